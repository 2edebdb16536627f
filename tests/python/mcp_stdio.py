"""The official MCP Python SDK starting `caxton mcp stdio` as a stdio
server (as desktop assistants do), which forwards to a running Caxton.

Environment:
  CAXTON_BIN        the caxton binary
  CAXTON_SERVER     the server's base URL, e.g. http://127.0.0.1:8080
  CAXTON_TOKEN      the bearer token
  CAXTON_MCP_MODE   "auto" or "legacy"

Prints one line per check; exits 1 on the first failure.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)
    print(f"ok: {message}")


async def run(mode):
    server = StdioServerParameters(
        command=os.environ["CAXTON_BIN"],
        args=["mcp", "stdio", "--server", os.environ["CAXTON_SERVER"]],
        env={"CAXTON_TOKEN": os.environ["CAXTON_TOKEN"], "PATH": os.environ.get("PATH", "")},
    )
    async with Client(server, mode=mode) as client:
        check(client.server_info.name == "caxton", f"the bridge reaches caxton ({client.protocol_version})")
        tools = {tool.name for tool in (await client.list_tools()).tools}
        check({"search_nodes", "read_graph"} <= tools, "the memory tools are listed through the bridge")
        name = f"stdio {mode} entity"
        created = await client.call_tool(
            "create_entities",
            {"entities": [{"name": name, "entityType": "note", "observations": ["made over stdio"]}]},
        )
        check(not created.is_error, "create_entities works through the bridge")
        opened = await client.call_tool("open_nodes", {"names": [name]})
        check(
            opened.structured_content["entities"][0]["observations"] == ["made over stdio"],
            "open_nodes reads it back",
        )
        graph = await client.read_resource("memory://knowledge-graph")
        check(name in json.dumps(json.loads(graph.contents[0].text)), "the resource is readable too")


def main():
    mode = os.environ.get("CAXTON_MCP_MODE", "auto")
    try:
        asyncio.run(run(mode))
    except CheckFailed as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
