"""An MCP client on the official Python SDK that signs in with OAuth, as hosted assistants do:
it connects to Airlock's /mcp with no token, follows the 401 to the protected resource metadata,
discovers the authorization server, registers itself, runs the authorization code flow with PKCE
(the "browser" is a plain HTTP GET of the authorization URL, whose redirect carries the code),
exchanges the code for a token bound to the resource, and then lists the tools, searches and
runs one action.
Prints what it got as JSON on stdout.

Usage: mcp_oauth_client.py MCP_URL QUERY ACTION ACTION_ARGS_JSON
"""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlparse

import httpx
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from oauth_session import Memory, use_mcp

REDIRECT = "http://127.0.0.1:1/callback"


async def main(url, query, action, action_args):
    redirected = {}

    async def redirect_handler(authorization_url: str):
        # The person's browser: the provider signs them in and redirects back with a code.
        async with httpx.AsyncClient() as http:
            r = await http.get(authorization_url, follow_redirects=False)
        location = r.headers.get("location", "")
        if r.status_code != 302 or not location.startswith(REDIRECT):
            raise RuntimeError(f"authorization answered {r.status_code} {location!r}: {r.text}")
        redirected.update({k: v[0] for k, v in parse_qs(urlparse(location).query).items()})

    async def callback_handler():
        return redirected["code"], redirected.get("state")

    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="airlock-test-assistant",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    got = await use_mcp(url, auth, storage, query, action, action_args)
    print(json.dumps(got))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
