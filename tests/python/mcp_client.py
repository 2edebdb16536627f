"""The official MCP Python SDK (`mcp`), in its default configuration,
against a running Caxton's /mcp: lists and calls the memory tools, a tool
component and an agent, and reads the knowledge-graph resource.

Environment:
  CAXTON_MCP_URL     the endpoint, e.g. http://127.0.0.1:8080/mcp
  CAXTON_TOKEN       the bearer token (the data dir's auth-token file)
  CAXTON_MCP_MODE    the SDK's connect mode: "auto" (2026-07-28, stateless)
                     or "legacy" (initialize handshake, Mcp-Session-Id)
  CAXTON_MCP_PREFIX  a prefix for the entity names this run creates
  CAXTON_HTTP_ENTITY an entity the test created through the HTTP API

Run with the pinned environment: target/pyenv/bin/python (scripts/setup
builds it). Prints one line per check; exits 1 on the first failure.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MEMORY_TOOLS = {
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
}


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)
    print(f"ok: {message}")


def text_of(result):
    return "".join(block.text for block in result.content if block.type == "text")


async def run(url, token, mode, prefix, http_entity):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            expected = "2026-07-28" if mode == "auto" else "2025-11-25"
            check(
                client.protocol_version == expected,
                f"{mode} mode negotiated {client.protocol_version} (want {expected})",
            )

            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            check(MEMORY_TOOLS <= tools.keys(), "the reference memory server's nine tools are listed")
            check("csv_parser" in tools, "the deployed tool component is listed")
            check(
                tools["csv_parser"].input_schema.get("required") == ["csv"],
                "the tool component's input schema is its describe()",
            )
            check("ask_echo" in tools, "the echo agent is listed as ask_echo")

            ada = f"{prefix} Ada Lovelace"
            babbage = f"{prefix} Charles Babbage"
            created = await client.call_tool(
                "create_entities",
                {
                    "entities": [
                        {
                            "name": ada,
                            "entityType": "person",
                            "observations": ["Wrote the first published computer program"],
                        },
                        {"name": babbage, "entityType": "person", "observations": []},
                    ]
                },
            )
            check(not created.is_error, f"create_entities succeeded: {text_of(created)[:200]}")
            names = [e["name"] for e in created.structured_content["entities"]]
            check(names == [ada, babbage], "both new entities are returned as structuredContent")
            check(json.loads(text_of(created))[0]["name"] == ada, "the text content is the same JSON")

            again = await client.call_tool(
                "create_entities",
                {"entities": [{"name": ada, "entityType": "person", "observations": []}]},
            )
            check(again.structured_content["entities"] == [], "an existing entity is not created again")

            related = await client.call_tool(
                "create_relations",
                {"relations": [{"from": ada, "to": babbage, "relationType": "worked with"}]},
            )
            check(len(related.structured_content["relations"]) == 1, "the relation is created")

            added = await client.call_tool(
                "add_observations",
                {
                    "observations": [
                        {
                            "entityName": ada,
                            "contents": [
                                "Described the Analytical Engine's ability to compute Bernoulli numbers",
                                "Wrote the first published computer program",
                            ],
                        }
                    ]
                },
            )
            result = added.structured_content["results"][0]
            check(
                result["addedObservations"]
                == ["Described the Analytical Engine's ability to compute Bernoulli numbers"],
                "add_observations returns only the observation that was new",
            )

            found = await client.call_tool("search_nodes", {"query": "who programmed the early mechanical computer?"})
            found_names = [e["name"] for e in found.structured_content["entities"]]
            check(ada in found_names, f"search_nodes finds by meaning: {found_names}")
            check(
                any(r["from"] == ada and r["to"] == babbage for r in found.structured_content["relations"]),
                "search_nodes returns the found entities' relations",
            )
            if http_entity:
                found = await client.call_tool("search_nodes", {"query": http_entity})
                check(
                    http_entity in [e["name"] for e in found.structured_content["entities"]],
                    "an entity created through the HTTP API is found over MCP",
                )

            opened = await client.call_tool("open_nodes", {"names": [babbage, f"{prefix} nobody"]})
            check(
                [e["name"] for e in opened.structured_content["entities"]] == [babbage],
                "open_nodes returns the entities that exist",
            )
            check(
                len(opened.structured_content["relations"]) == 1,
                "open_nodes includes relations with one end among them",
            )

            graph = await client.read_resource("memory://knowledge-graph")
            graph = json.loads(graph.contents[0].text)
            check(ada in [e["name"] for e in graph["entities"]], "the knowledge-graph resource has the entity")

            dangling = await client.call_tool(
                "create_relations",
                {"relations": [{"from": ada, "to": f"{prefix} nobody", "relationType": "knows"}]},
            )
            check(
                dangling.is_error and "not found" in text_of(dangling),
                f"a relation to a missing entity is a tool error: {text_of(dangling)}",
            )

            parsed = await client.call_tool("csv_parser", {"csv": "a,b\n1,2\n3,4\n"})
            check(not parsed.is_error, f"the tool component ran: {text_of(parsed)[:200]}")
            check(parsed.structured_content["row_count"] == 2, "its JSON answer is structuredContent")
            bad = await client.call_tool("csv_parser", {"nope": 1})
            check(bad.is_error and "input" in text_of(bad), f"a tool's error reaches the client: {text_of(bad)}")

            asked = await client.call_tool("ask_echo", {"message": {"text": "hello over MCP"}})
            check(not asked.is_error, f"ask_echo answered: {text_of(asked)[:200]}")
            check(
                "hello over MCP" in json.dumps(asked.structured_content["reply"]),
                "the agent's reply comes back",
            )
            check(bool(asked.structured_content["conversation_id"]), "with its conversation id")

            await client.call_tool(
                "delete_observations",
                {"deletions": [{"entityName": ada, "observations": ["Wrote the first published computer program"]}]},
            )
            await client.call_tool(
                "delete_relations",
                {"relations": [{"from": ada, "to": babbage, "relationType": "worked with"}]},
            )
            opened = await client.call_tool("open_nodes", {"names": [ada]})
            entity = opened.structured_content["entities"][0]
            check(
                entity["observations"]
                == ["Described the Analytical Engine's ability to compute Bernoulli numbers"],
                "delete_observations removed exactly that observation",
            )
            check(opened.structured_content["relations"] == [], "delete_relations removed the relation")
            deleted = await client.call_tool("delete_entities", {"entityNames": [babbage, f"{prefix} nobody"]})
            check(deleted.structured_content["success"] is True, "delete_entities succeeds, skipping missing names")
            opened = await client.call_tool("open_nodes", {"names": [babbage]})
            check(opened.structured_content["entities"] == [], "the deleted entity is gone")


def main():
    url = os.environ["CAXTON_MCP_URL"]
    token = os.environ["CAXTON_TOKEN"]
    mode = os.environ.get("CAXTON_MCP_MODE", "auto")
    prefix = os.environ.get("CAXTON_MCP_PREFIX", "mcp")
    http_entity = os.environ.get("CAXTON_HTTP_ENTITY", "")
    try:
        asyncio.run(run(url, token, mode, prefix, http_entity))
    except CheckFailed as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
