"""{{name}}: a Caxton tool in Python, built with componentize-py.

Counts the words and characters of a text: input {"text": "..."}, output
{"words": N, "characters": N}. Bad input is answered with `invalid-input`
(`raise Err(Error_InvalidInput(...))`); any other exception traps the call
and the caller gets `plugin_trap` with the traceback's last lines.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Error_InvalidInput, ToolDescription

SCHEMA = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {"text": {"type": "string", "description": "The text to count"}},
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> ToolDescription:
        return ToolDescription(
            name="{{name}}",
            description="Counts the words and characters of a text.",
            input_schema=json.dumps(SCHEMA),
        )

    def invoke(self, input: str) -> str:
        try:
            request = json.loads(input)
        except ValueError as error:
            raise Err(Error_InvalidInput(f"input is not JSON: {error}"))
        if not isinstance(request, dict) or set(request) != {"text"} or not isinstance(request["text"], str):
            raise Err(Error_InvalidInput('input must be {"text": "..."} and nothing else'))
        text = request["text"]
        return json.dumps({"words": len(text.split()), "characters": len(text)})
