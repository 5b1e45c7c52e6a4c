"""An MCP client built on the official Python SDK: connects to Airlock's /mcp with a bearer token,
lists the tools, calls `search` and one action, and prints what it got as JSON on stdout.

Usage: mcp_client.py URL TOKEN QUERY ACTION ACTION_ARGS_JSON
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


def texts(result):
    return [c.text for c in result.content if getattr(c, "type", "") == "text"]


async def main(url, token, query, action, action_args):
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            search = await session.call_tool("search", {"query": query})
            act = await session.call_tool(action, json.loads(action_args))
            print(
                json.dumps(
                    {
                        "tools": sorted(t.name for t in tools.tools),
                        "search": texts(search),
                        "search_is_error": bool(search.isError),
                        "action": texts(act),
                        "action_is_error": bool(act.isError),
                    }
                )
            )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
