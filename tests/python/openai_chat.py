"""The official `openai` Python client, in its default configuration,
talking to a Caxton configuration agent through the OpenAI-compatible
front (`/api/v1/chat/completions`, `model` = the agent's name), which
answers through a real small language model: once whole, once streamed,
and the agent is among the listed models.

Environment:
  CAXTON_BASE_URL  the API root, e.g. http://127.0.0.1:8080/api/v1
  CAXTON_TOKEN     the bearer token
  CAXTON_AGENT     the configuration agent's name

Prints one line per check; exits 1 on the first failure.
"""

import os
import sys
import time


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


QUESTION = "What is the capital of France? Answer in one word."


def main():
    import openai

    client = openai.OpenAI(
        base_url=os.environ["CAXTON_BASE_URL"], api_key=os.environ["CAXTON_TOKEN"]
    )
    agent = os.environ["CAXTON_AGENT"]

    ids = [m.id for m in client.models.list()]
    check(agent in ids, f"models.list() lacks the agent {agent!r}: {ids}")
    print(f"ok  models.list() includes {agent}")

    started = time.monotonic()
    whole = client.chat.completions.create(
        model=agent, messages=[{"role": "user", "content": QUESTION}]
    )
    answer = whole.choices[0].message.content or ""
    check("paris" in answer.lower(), f"the whole answer lacks Paris: {answer!r}")
    check(whole.choices[0].finish_reason == "stop", f"finish_reason {whole.choices[0].finish_reason}")
    check(whole.usage.completion_tokens > 0, f"no completion tokens counted: {whole.usage}")
    print(f"ok  create(): {answer!r} in {time.monotonic() - started:.2f}s, usage {whole.usage}")

    started = time.monotonic()
    pieces = []
    first_at = None
    stream = client.chat.completions.create(
        model=agent,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                if first_at is None:
                    first_at = time.monotonic() - started
                pieces.append(choice.delta.content)
    streamed = "".join(pieces)
    check(len(pieces) > 1, f"the answer came in {len(pieces)} piece(s), not streamed: {pieces}")
    check("paris" in streamed.lower(), f"the streamed answer lacks Paris: {streamed!r}")
    check(usage is not None and usage.completion_tokens > 0, f"no usage chunk: {usage}")
    print(f"ok  create(stream=True): {len(pieces)} pieces, first after {first_at:.2f}s: {streamed!r}")

    try:
        client.chat.completions.create(
            model="no-such-agent", messages=[{"role": "user", "content": "hi"}]
        )
        raise CheckFailed("an unknown agent was answered")
    except openai.NotFoundError as error:
        print(f"ok  unknown agent: NotFoundError ({error.status_code})")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as failure:
        print(f"FAIL {failure}")
        sys.exit(1)
