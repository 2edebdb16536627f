"""The official `openai` Python client, in its default configuration,
against a running Caxton: embeddings (the client asks for base64 and
decodes the vectors itself) and the model list.

Environment:
  CAXTON_BASE_URL  the API root, e.g. http://127.0.0.1:8080/api/v1
  CAXTON_TOKEN     the bearer token (the data dir's auth-token file)

Run with the pinned environment: target/pyenv/bin/python (scripts/setup
builds it). Prints one line per check; exits 1 on the first failure, 2 when
the environment is not set up.
"""

import math
import os
import sys

MODEL = "all-MiniLM-L6-v2"
DIMS = 384


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm


def vector_ok(vector, what):
    check(isinstance(vector, list), f"{what}: embedding is a {type(vector).__name__}, not a list of floats")
    check(len(vector) == DIMS, f"{what}: {len(vector)} dimensions, expected {DIMS}")
    check(all(isinstance(x, float) and math.isfinite(x) for x in vector), f"{what}: not all finite floats")
    check(any(x != 0.0 for x in vector), f"{what}: all zeros")


def run(client, openai):
    # Embeddings, default configuration: the client sends
    # encoding_format=base64 and decodes little-endian float32 itself.
    texts = [
        "The cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Quarterly revenue grew by eight percent.",
    ]
    response = client.embeddings.create(model=MODEL, input=texts)
    check(response.object == "list", f"object is {response.object!r}, expected 'list'")
    check(len(response.data) == len(texts), f"{len(response.data)} embeddings for {len(texts)} inputs")
    for i, item in enumerate(response.data):
        check(item.index == i, f"data[{i}].index is {item.index}")
        check(item.object == "embedding", f"data[{i}].object is {item.object!r}")
        vector_ok(item.embedding, f"data[{i}]")
    check(response.model.endswith(MODEL), f"model is {response.model!r}, expected {MODEL!r}")
    check(response.usage.prompt_tokens > 0, f"usage.prompt_tokens is {response.usage.prompt_tokens}")
    print(f"ok  embeddings.create: {len(response.data)} x {DIMS}-dim vectors, decoded by the client")

    # The client also takes float lists where it asked for base64: check
    # that the server really answered in the encoding the client asked for.
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=texts[:1])
    sent = raw.http_request.content.decode()
    check('"encoding_format":"base64"' in sent.replace(" ", ""), f"the client did not ask for base64: {sent}")
    answered = raw.http_response.json()["data"][0]["embedding"]
    check(isinstance(answered, str), f"asked for base64, the server answered a {type(answered).__name__}")
    check(len(answered) == 4 * ((DIMS * 4 + 2) // 3), f"base64 of {DIMS} float32 is {4 * ((DIMS * 4 + 2) // 3)} "
                                                      f"characters, the server sent {len(answered)}")
    print("ok  the server answers encoding_format=base64 with base64 strings")

    cat, kitten, revenue = (item.embedding for item in response.data)
    similar, unrelated = cosine(cat, kitten), cosine(cat, revenue)
    check(
        similar > unrelated + 0.1,
        f"similar sentences score {similar:.3f}, unrelated {unrelated:.3f}: the vectors do not mean what they should "
        "(wrong byte order or float width in the base64?)",
    )
    print(f"ok  cosine: similar {similar:.3f} > unrelated {unrelated:.3f}")

    # The same text as floats (OpenAI's other encoding) gives the same vector.
    floats = client.embeddings.create(model=MODEL, input=texts[0], encoding_format="float")
    check(len(floats.data) == 1, f"{len(floats.data)} embeddings for one input")
    vector_ok(floats.data[0].embedding, "float encoding")
    agreement = cosine(floats.data[0].embedding, cat)
    check(agreement > 0.9999, f"float and base64 encodings of one text differ (cosine {agreement:.6f})")
    print(f"ok  encoding_format=float agrees with base64 (cosine {agreement:.6f})")

    # The model list, as clients and UIs ask for it.
    ids = [model.id for model in client.models.list()]
    check(MODEL in ids, f"models.list() has {ids}, not {MODEL!r}")
    print(f"ok  models.list: {ids}")

    model = client.models.retrieve(MODEL)
    check(model.id == MODEL, f"models.retrieve({MODEL!r}).id is {model.id!r}")
    check(model.object == "model", f"models.retrieve({MODEL!r}).object is {model.object!r}")
    check(isinstance(model.created, int), f"models.retrieve({MODEL!r}).created is {model.created!r}")
    check(bool(model.owned_by), f"models.retrieve({MODEL!r}).owned_by is empty")
    print(f"ok  models.retrieve({MODEL!r}): owned by {model.owned_by!r}")

    try:
        client.models.retrieve("text-embedding-3-small")
    except openai.NotFoundError as error:
        print(f"ok  models.retrieve of an unknown model raises NotFoundError ({error.status_code})")
    else:
        raise CheckFailed("models.retrieve('text-embedding-3-small') did not raise openai.NotFoundError")


def main():
    base_url = os.environ.get("CAXTON_BASE_URL")
    token = os.environ.get("CAXTON_TOKEN")
    if not base_url or not token:
        print("FAIL: set CAXTON_BASE_URL (e.g. http://127.0.0.1:8080/api/v1) and CAXTON_TOKEN", file=sys.stderr)
        return 2
    try:
        import openai
    except ImportError as error:
        print(f"FAIL: the openai package is missing ({error}); run ./scripts/setup and use target/pyenv/bin/python",
              file=sys.stderr)
        return 2

    print(f"openai {openai.__version__} against {base_url}")
    client = openai.OpenAI(base_url=base_url, api_key=token)
    try:
        run(client, openai)
    except CheckFailed as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    except openai.APIStatusError as error:
        print(f"FAIL: {error.request.method} {error.request.url} answered {error.status_code}: {error.response.text}",
              file=sys.stderr)
        return 1
    except openai.APIError as error:
        print(f"FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("all openai client checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
