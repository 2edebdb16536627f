"""{{name}}: a Caxton agent in Python, built with componentize-py.

It keeps notes in its memory (the manifest grants `memory`):
- {"remember": "text"} stores the text as an observation of `notes`;
- {"recall": "question", "limit": 5} replies with the closest notes;
- anything else is echoed back as {"echo": ...}.

Errors: `raise Err(Error_InvalidInput("why"))` answers the caller with a
typed error (`plugin_error`, kind `invalid-input`). Any other exception
traps the call: the
caller gets `plugin_trap` with the traceback's last lines, and the host
keeps serving.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, memory
from wit_world.imports.types import Error_InvalidInput, Message, Performative


def reply(to: Message, content: object) -> Message:
    """An `inform` answering `to`: to its sender, in its conversation.
    The host fills in the reply's id and sender."""
    return Message(
        id="",
        performative=Performative.INFORM,
        sender="",
        receiver=to.sender,
        capability=None,
        conversation_id=to.conversation_id,
        reply_with=None,
        in_reply_to=to.reply_with or to.id,
        content=json.dumps(content),
    )


class WitWorld(wit_world.WitWorld):
    def handle(self, message: Message) -> Message | None:
        try:
            request = json.loads(message.content)
        except ValueError as error:
            raise Err(Error_InvalidInput(f"content is not JSON: {error}"))
        if isinstance(request, dict) and "remember" in request:
            note = str(request["remember"])
            memory.remember("notes", "note", [note])
            log.log(log.Level.INFO, f"stored a note of {len(note)} characters")
            return reply(message, {"stored": note})
        if isinstance(request, dict) and "recall" in request:
            limit = request.get("limit", 5)
            if not isinstance(limit, int) or not 1 <= limit <= 100:
                raise Err(Error_InvalidInput("limit must be a whole number from 1 to 100"))
            hits = memory.search(str(request["recall"]), limit)
            return reply(message, {"notes": [hit.observation for hit in hits]})
        return reply(message, {"echo": request})
