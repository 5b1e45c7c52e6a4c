"""What the OAuth test clients share: token storage in memory (the SDK asks for somewhere to keep the
client registration and the tokens; a test run needs nothing to outlive it), and one MCP session that searches and runs an action."""

from mcp.client.auth import TokenStorage
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


async def use_mcp(url, auth, storage, query, action, action_args):
    """Connects with `auth`, lists the tools, searches and runs one action; what it got, as a dict."""
    import json

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url, auth=auth) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            search = await session.call_tool("search", {"query": query})
            act = await session.call_tool(action, json.loads(action_args))
    return {
        "tools": sorted(t.name for t in tools.tools),
        "search": [c.text for c in search.content if getattr(c, "type", "") == "text"],
        "search_is_error": bool(search.isError),
        "action_is_error": bool(act.isError),
        "scope": storage.tokens.scope if storage.tokens else None,
        "client_id": storage.client.client_id if storage.client else None,
    }
