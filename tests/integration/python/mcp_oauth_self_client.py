"""An MCP client on the official Python SDK that signs in at Airlock's own authorization server,
as a hosted assistant would: it connects to /mcp with no token, follows the 401 to the protected
resource metadata, finds Airlock itself named as the authorization server, identifies itself
(MODE `cimd`: by a client ID metadata document it serves on a loopback port; MODE `dcr`: by
dynamic registration), runs the authorization code flow with PKCE, and then lists the tools,
searches and runs one action. The "browser" is an HTTP client with a cookie jar: it opens the
sign-in page, pastes the person's Airlock API token into its form and follows the redirect.
Prints what it got as JSON on stdout.

Usage: mcp_oauth_self_client.py MCP_URL API_TOKEN MODE QUERY ACTION ACTION_ARGS_JSON
"""

import asyncio
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from oauth_session import Memory, use_mcp

REDIRECT = "http://127.0.0.1:1/callback"
NAME = "airlock-test-assistant"


def serve_metadata_document():
    """Serves this client's metadata document on a loopback port; returns its URL (the client_id)."""
    document = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(document).encode()
            self.send_response(200 if self.path == "/oauth/client.json" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_port}/oauth/client.json"
    document.update(
        {
            "client_id": url,
            "client_name": NAME,
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url


async def main(url, api_token, mode, query, action, action_args):
    redirected = {}
    page_headers = {}

    async def redirect_handler(authorization_url: str):
        # The person's browser: the sign-in page, the token pasted, the redirect back.
        async with httpx.AsyncClient() as http:
            page = await http.get(authorization_url, follow_redirects=False)
            if page.status_code != 200:
                raise RuntimeError(f"sign-in page answered {page.status_code}: {page.text}")
            page_headers.update({k.lower(): v for k, v in page.headers.items()})
            fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
            answer = await http.post(
                urljoin(authorization_url, "/oauth/authorize"),
                data={**fields, "token": api_token, "decision": "allow"},
                follow_redirects=False,
            )
        location = answer.headers.get("location", "")
        if answer.status_code != 303 or not location.startswith(REDIRECT):
            raise RuntimeError(f"sign-in answered {answer.status_code} {location!r}: {answer.text}")
        redirected.update({k: v[0] for k, v in parse_qs(urlparse(location).query).items()})

    async def callback_handler():
        return redirected["code"], redirected.get("state")

    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name=NAME,
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    if mode == "cimd":
        # Set after construction: the SDK accepts only https client ID URLs, and a test has
        # none; Airlock takes this loopback http one only with allow_loopback_client_ids.
        auth.context.client_metadata_url = serve_metadata_document()
    got = await use_mcp(url, auth, storage, query, action, action_args)
    got.update(
        {
            "iss": redirected.get("iss"),
            "csp": page_headers.get("content-security-policy"),
            "access_token": storage.tokens.access_token if storage.tokens else None,
            "refresh_token": storage.tokens.refresh_token if storage.tokens else None,
        }
    )
    print(json.dumps(got))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
