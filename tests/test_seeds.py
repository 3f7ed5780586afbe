"""Every example of the five documents Switchboard's Python API was built from, run as written.

The examples are copied below verbatim, as data (the documents are not read). `port()` changes only what a user
porting one changes, and fails if a change no longer finds its text: the import line (g4f's provider classes
become `Provider`s of the same name, at the server's address), the model names, and the server address (the
scripted upstream, a forward proxy, an image server, all on loopback). A line `...` is the document's elision of
further arguments: a reader drops it, and so does `port()`. Each test then checks what its example promises.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import builtins
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

import backend
from backend import ChatCompletion, ChatCompletionEvent, SwitchboardError, models
from tests.conftest import scripted_config
from tests.forward_proxy import ForwardProxy
from tests.test_images_vision import png
from tests.upstream import Reply, ScriptedUpstream
from tests.wire import json_reply

HELLO = "Hello from the scripted upstream."
NO_WAIT = {"retry-after": "0"}  # a failure retried at once: the retry is what is tested, not its backoff


def port(
    example: str,
    *,
    imports: dict[str, str],
    models: dict[str, str] | None = None,
    servers: dict[str, str] | None = None,
) -> str:
    """`example` with only its import line, model names and server address changed, and its `...` lines dropped."""
    for old, new in {**imports, **(models or {}), **(servers or {})}.items():
        assert old in example, f"{old!r} is no longer in the example"
        example = example.replace(old, new)
    return "\n".join(line for line in example.splitlines() if line.strip() != "...")


def providers(**addresses: str) -> str:
    """The import line of g4f's provider classes, ported: a `Provider` of kind "openai" by each name."""
    named = "".join(f"{name} = Provider('openai', base_url='{address}')\n" for name, address in addresses.items())
    return "from backend import Provider\n" + named


class Namespace:
    """Where examples run, one after another, as in one script; what they print is kept (objects and text)."""

    def __init__(self) -> None:
        self.printed: list[tuple[Any, ...]] = []
        self.output = io.StringIO()
        self.names: dict[str, Any] = {"print": self._print}

    def _print(self, *args: Any, **options: Any) -> None:
        self.printed.append(args)
        builtins.print(*args, **{**options, "file": self.output})

    def run(self, code: str) -> None:
        exec(compile(code, "<example>", "exec"), self.names)

    async def run_async(self, code: str) -> None:
        """Run code that may `await` at its top level, as in a notebook (the documents' async snippets do)."""
        result = eval(compile(code, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), self.names)
        if result is not None:
            await result

    def __getitem__(self, name: str) -> Any:
        return self.names[name]


# --- 000: g4f's ChatCompletion.create / create_async ------------------------------------------------------------

# The module's import line; its examples use the name `g4f`.
G4F_IMPORT = "import g4f\n"

# The document shows this one twice, word for word (under "Functions" and under "Examples").
G4F_CREATE_ASYNC = """
async def run_async():
    response = await g4f.ChatCompletion.create_async(
        model=g4f.models.default,
        #provider=g4f.Provider.Bing,
        messages=[{"role": "user", "content": "hello!"}],
    )
    print("create_async:", response)
"""

G4F_CREATE_STREAM = """
print("create:", end=" ", flush=True)
for response in g4f.ChatCompletion.create(
    model=g4f.models.default,
    #provider=g4f.Provider.Bing,
    messages=[{"role": "user", "content": "write a poem about a tree"}],
    stream=True
):
    print(response, end="", flush=True)
print()
"""


def port_000(example: str) -> str:
    return port(
        G4F_IMPORT + example,
        imports={"import g4f": "import backend as g4f"},
        models={"g4f.models.default": "'scripted/scripted-1'"},
    )


@pytest.fixture
def default_client(upstream, write_config, monkeypatch):
    """`ChatCompletion`'s shared client reads the configuration as the app does: the scripted upstream's."""
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(write_config(scripted_config(upstream))))
    ChatCompletion._client = None
    yield
    if ChatCompletion._client is not None:
        ChatCompletion._client.close()
    ChatCompletion._client = None


def test_000_create_streams_text(default_client, upstream):
    upstream.enqueue(Reply.text(["A tree", " holds", " the sky."]))
    namespace = Namespace()
    namespace.run(port_000(G4F_CREATE_STREAM))
    assert namespace.output.getvalue() == "create: A tree holds the sky.\n"
    assert upstream.chat_requests()[0].body["messages"] == [{"role": "user", "content": "write a poem about a tree"}]


def test_000_create_async_answers(default_client, upstream):
    namespace = Namespace()
    namespace.run(port_000(G4F_CREATE_ASYNC))
    asyncio.run(namespace["run_async"]())
    assert namespace.output.getvalue() == f"create_async: {HELLO}\n"
    assert upstream.chat_requests()[0].body["messages"] == [{"role": "user", "content": "hello!"}]


# --- 001: g4f's Client with a RetryProvider and proxies -----------------------------------------------------------

G4F_CLIENT_THROUGH_A_PROXY = """from g4f.client   import Client
from g4f.Provider import OpenaiChat, RetryProvider

# compatible countries: https://pastebin.com/UK0gT9cn
client = Client(
    proxies = {
        'http': 'http://username:password@host:port', # MUST BE WORKING OPENAI COUNTRY PROXY ex: USA
        'https': 'http://username:password@host:port' # MUST BE WORKING OPENAI COUNTRY PROXY ex: USA
    },
    provider = RetryProvider([OpenaiChat],
                             single_provider_retry=True, max_retries=5)
)

messages = [
    {'role': 'user', 'content': 'Hello'}
]

response = client.chat.completions.create(model='gpt-3.5-turbo',
                                     messages=messages,\x20
                                     stream=True)

for message in response:
    print(message.choices[0].delta.content or "")
"""  # (\x20: the document's trailing space)


def test_001_retries_through_the_proxy_and_streams(upstream):
    upstream.enqueue(Reply.error(500, "down", NO_WAIT), Reply.error(503, "busy", NO_WAIT), Reply.text(["Hi", " there"]))
    namespace = Namespace()
    with ForwardProxy() as proxy:
        code = port(
            G4F_CLIENT_THROUGH_A_PROXY,
            imports={
                "from g4f.client   import Client": "from backend import Client",
                "from g4f.Provider import OpenaiChat, RetryProvider": "from backend import RetryProvider\n"
                + providers(OpenaiChat=upstream.base_url),
            },
            servers={"host:port": proxy.address},
        )
        try:
            namespace.run(code)
        finally:
            namespace["client"].close()
    assert namespace.output.getvalue().split("\n") == ["Hi", " there", "", ""]  # the last chunk has no text
    assert len(upstream.chat_requests()) == 3  # two failures retried on the one provider, then the answer
    assert {request.body["model"] for request in upstream.chat_requests()} == {"gpt-3.5-turbo"}
    assert [request.url for request in proxy.requests] == [f"{upstream.base_url}/chat/completions"] * 3
    assert {request.credentials for request in proxy.requests} == {"username:password"}


# --- 002: gen_ai's create_client(...).run_chat_completions(_stream) --------------------------------------------

GEN_AI_BASIC_USAGE = """from gen_ai.factory import create_client

# Create a client
client = create_client(
    provider="openai",
    api_key="your-api-key",
    endpoint="https://api.example.com/v1",
    model_name="gpt-3.5-turbo"
)

# Chat with the model
messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What are the key benefits of modular code?"}
]

response = client.run_chat_completions(
    messages=messages,
    max_tokens=150
)
print(response)
"""

GEN_AI_STREAMING = """# Stream the response token by token
for token in client.run_chat_completions_stream(
    messages=messages,
    max_tokens=150
):
    print(token, end="", flush=True)
"""

GEN_AI_MESSAGE_FORMAT = """messages = [
    {
        "role": "system",  # System message to set behavior
        "content": "You are a helpful assistant."
    },
    {
        "role": "user",    # User message
        "content": "Hello!"
    },
    {
        "role": "assistant",  # Assistant's previous response
        "content": "Hi! How can I help you?"
    }
]
"""

GEN_AI_BASIC_CHAT = """messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What are the key benefits of modular code?"}
]

response = client.run_chat_completions(
    messages=messages,
    max_tokens=150,
    temperature=0.7
)
"""

GEN_AI_MULTI_TURN = """# First message
messages = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is Python?"}
]
response = client.run_chat_completions(messages=messages)

# Add the response to the conversation
messages.append({"role": "assistant", "content": response})

# Follow-up question
messages.append({"role": "user", "content": "How does it compare to JavaScript?"})
response = client.run_chat_completions(messages=messages)
"""

GEN_AI_STRUCTURED_OUTPUT = """from pydantic import BaseModel, Field

class CodeReview(BaseModel):
    overall_score: float = Field(..., ge=0, le=10, description="Overall code quality score")
    strengths: list[str] = Field(..., description="List of code strengths")
    weaknesses: list[str] = Field(..., description="List of code weaknesses")
    suggestions: list[str] = Field(..., description="List of improvement suggestions")

messages = [
    {"role": "system", "content": "You are an expert code reviewer."},
    {"role": "user", "content": "Review this code: def hello(): print('Hello')"}
]

response = client.run_chat_completions(
    messages=messages,
    guided_json=CodeReview.model_json_schema(),
    max_tokens=300
)
"""

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


@pytest.fixture
def gen_ai(upstream):
    """A namespace where the document's first example has run: `client` and `messages` are defined."""
    namespace = Namespace()
    namespace.run(
        port(
            GEN_AI_BASIC_USAGE,
            imports={"from gen_ai.factory import create_client": "from backend import create_client"},
            servers={"https://api.example.com/v1": upstream.base_url},
        )
    )
    yield namespace
    namespace["client"].close()


def test_002_basic_usage(gen_ai, upstream):
    assert gen_ai.output.getvalue() == f"{[HELLO]}\n"
    sent = upstream.chat_requests()[0]
    assert sent.body["model"] == "gpt-3.5-turbo" and sent.body["max_tokens"] == 150
    assert sent.body["messages"] == [SYSTEM, {"role": "user", "content": "What are the key benefits of modular code?"}]
    assert sent.headers["authorization"] == "Bearer your-api-key"


def test_002_streaming(gen_ai, upstream):
    upstream.enqueue(Reply.text(["Small", " parts", " compose."]))
    gen_ai.run(GEN_AI_STREAMING)
    assert gen_ai.output.getvalue() == f"{[HELLO]}\nSmall parts compose."
    assert upstream.chat_requests()[-1].body["max_tokens"] == 150


def test_002_message_format(gen_ai, upstream):
    gen_ai.run(GEN_AI_MESSAGE_FORMAT)
    assert gen_ai["client"].run_chat_completions(messages=gen_ai["messages"]) == [HELLO]
    assert [message["role"] for message in upstream.chat_requests()[-1].body["messages"]] == [
        "system",
        "user",
        "assistant",
    ]


def test_002_basic_chat(gen_ai, upstream):
    gen_ai.run(GEN_AI_BASIC_CHAT)
    assert gen_ai["response"] == [HELLO]
    body = upstream.chat_requests()[-1].body
    assert (body["max_tokens"], body["temperature"]) == (150, 0.7)


def test_002_multi_turn_sends_the_first_answer_as_the_assistant_turn(gen_ai, upstream):
    upstream.enqueue(Reply.text(["A language."]), Reply.text(["Both are dynamic."]))
    gen_ai.run(GEN_AI_MULTI_TURN)
    assert gen_ai["response"] == ["Both are dynamic."]
    assert upstream.chat_requests()[-1].body["messages"] == [
        SYSTEM,
        {"role": "user", "content": "What is Python?"},
        {"role": "assistant", "content": "A language."},  # text, as every provider takes it
        {"role": "user", "content": "How does it compare to JavaScript?"},
    ]


def test_002_structured_output(gen_ai, upstream):
    review = {"overall_score": 6.5, "strengths": ["short"], "weaknesses": ["no docstring"], "suggestions": ["add one"]}
    upstream.enqueue(Reply.text([json.dumps(review)[:20], json.dumps(review)[20:]]))
    gen_ai.run(GEN_AI_STRUCTURED_OUTPUT)
    code_review = gen_ai["CodeReview"]
    assert code_review.model_validate_json(gen_ai["response"][0]).model_dump() == review
    body = upstream.chat_requests()[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == code_review.model_json_schema()
    assert body["max_tokens"] == 300


def test_002_return_error(gen_ai, upstream):
    """The document's `return_error`: the error comes back with the (empty) result instead of being raised."""
    upstream.enqueue(Reply.error(401, "bad key"), Reply.error(401, "bad key"))
    texts, error = gen_ai["client"].run_chat_completions(messages=gen_ai["messages"], return_error=True)
    assert texts == [] and isinstance(error, SwitchboardError) and error.status_code == 401
    streamed = list(gen_ai["client"].run_chat_completions_stream(messages=gen_ai["messages"], return_error=True))
    assert len(streamed) == 1 and streamed[0].startswith("[error]") and "401" in streamed[0]


# --- 003: a typed SDK: client.chat.stream(request=...) / chat.create(request=...) -------------------------------

TYPED_STREAM = """import beezy_ai
from beezy_ai import BeezyAI
import os

s = BeezyAI(
    api_key_auth=os.getenv("API_KEY_AUTH", ""),
)


res = s.chat.stream(request={
    "model": "beezy-small-latest",
    "messages": [
        {
            "role": beezy_ai.ChatCompletionRole.USER,
            "content": "Who is the best French painter? Answer in JSON.",
        },
    ],
    "response_format": {
        "type": "json_object",
    },
    "max_tokens": 512,
    "random_seed": 1337,
})

if res is not None:
    for event in res:
        # handle event
        print(event)

"""

TYPED_CREATE = """import beezy_ai
from beezy_ai import BeezyAI
import os

s = BeezyAI(
    api_key_auth=os.getenv("API_KEY_AUTH", ""),
)


res = s.chat.create(request={
    "model": "beezy-small-latest",
    "messages": [
        {
            "role": beezy_ai.ChatCompletionRole.USER,
            "content": "What is the weather like in Paris?",
        },
    ],
    "max_tokens": 64,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather in a given location.",
                "parameters": {},
            },
        },
    ],
    "tool_choice": "auto",
    "random_seed": 1337,
})

if res is not None:
    # handle response
    pass

"""

# The errors of both operations, as the document lists them.
TYPED_ERRORS = """
| Error Object               | Status Code                | Content Type               |
| -------------------------- | -------------------------- | -------------------------- |
| models.BadRequest          | 400                        | application/json           |
| models.Unauthorized        | 401                        | application/json           |
| models.Forbidden           | 403                        | application/json           |
| models.NotFound            | 404                        | application/json           |
| models.TooManyRequests     | 429                        | application/json           |
| models.InternalServerError | 500                        | application/json           |
| models.ServiceUnavailable  | 503                        | application/json           |
| models.SDKError            | 4xx-5xx                    | */*                        |
"""
ROWS = re.findall(r"\| models\.(\w+) +\| ([\w-]+) ", TYPED_ERRORS)
OTHER_STATUSES = {"4xx-5xx": [409, 418, 502]}  # statuses the table names no class for


def port_003(example: str, upstream: ScriptedUpstream) -> str:
    signed_in = '    api_key_auth=os.getenv("API_KEY_AUTH", ""),\n'
    return port(
        example,
        imports={
            "import beezy_ai\n": "import backend as beezy_ai\n",
            "from beezy_ai import BeezyAI": "from backend import Client as BeezyAI",
        },
        servers={signed_in: f"{signed_in}    server_url='{upstream.base_url}',\n"},
    )


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("API_KEY_AUTH", "sk-typed")
    return "sk-typed"


def test_003_stream_gives_events_of_json(upstream, api_key):
    upstream.enqueue(Reply.text(['{"painter": ', '"Claude Monet"}']))
    namespace = Namespace()
    try:
        namespace.run(port_003(TYPED_STREAM, upstream))
    finally:
        namespace["s"].close()
    events = [printed[0] for printed in namespace.printed]
    assert events and all(isinstance(event, ChatCompletionEvent) for event in events)
    answer = "".join(event.data.choices[0].delta.content or "" for event in events)
    assert json.loads(answer) == {"painter": "Claude Monet"}
    sent = upstream.chat_requests()[0]
    assert sent.body["messages"] == [{"role": "user", "content": "Who is the best French painter? Answer in JSON."}]
    assert sent.body["response_format"] == {"type": "json_object"}
    assert (sent.body["max_tokens"], sent.body["seed"], sent.body["model"]) == (512, 1337, "beezy-small-latest")
    assert sent.headers["authorization"] == f"Bearer {api_key}"


def test_003_create_returns_the_tool_call(upstream, api_key):
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    upstream.enqueue(Reply.text([], tool_calls=[call], finish="tool_calls"))
    namespace = Namespace()
    try:
        namespace.run(port_003(TYPED_CREATE, upstream))
    finally:
        namespace["s"].close()
    choice = namespace["res"].choices[0]
    assert choice.finish_reason == "tool_calls"
    assert (choice.message.tool_calls[0].id, choice.message.tool_calls[0].function.name) == ("call_1", "get_weather")
    body = upstream.chat_requests()[0].body
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["tool_choice"] == "auto"
    assert (body["max_tokens"], body["seed"]) == (64, 1337)


@pytest.mark.parametrize(
    ("name", "status"),
    [(name, int(code)) for name, code in ROWS if code.isdigit()]
    + [(name, status) for name, code in ROWS if not code.isdigit() for status in OTHER_STATUSES[code]],
)
@pytest.mark.parametrize("operation", ["create", "stream"])
def test_003_errors_by_their_names(upstream, api_key, name, status, operation):
    """Each operation raises the table's error for each status, at the call (a stream before its first event);
    the class is ours under the document's name, importable from `backend` and from `backend.models`."""
    error_class = getattr(models, name)
    assert getattr(backend, name) is error_class and issubclass(error_class, models.SDKError)
    upstream.enqueue(*[Reply.error(status, f"scripted {status}", NO_WAIT)] * 3)  # a try and two retries at most
    with (
        backend.Client(api_key_auth=api_key, server_url=upstream.base_url) as s,
        pytest.raises(error_class) as raised,
    ):
        getattr(s.chat, operation)(
            request={"model": "beezy-small-latest", "messages": [{"role": "user", "content": "Hi"}]}
        )
    assert raised.value.status_code == status


# --- 004: g4f's AsyncClient: image_provider, proxies, vision image=, images.generate -------------------------------

ASYNC_CLIENT_INIT = """from g4f.client import AsyncClient
from g4f.Provider import BingCreateImages, OpenaiChat, Gemini

client = AsyncClient(
    provider=OpenaiChat,
    image_provider=Gemini,
    ...
)
"""

ASYNC_CLIENT_CONFIGURATION = """from g4f.client import AsyncClient

client = AsyncClient(
    api_key="your_api_key_here",
    proxies="http://user:pass@host",
    ...
)
"""

ASYNC_TEXT_COMPLETIONS = """response = await client.chat.completions.create(
    model="gpt-3.5-turbo",
    messages=[{"role": "user", "content": "Say this is a test"}],
    ...
)
print(response.choices[0].message.content)
"""

ASYNC_STREAMING_COMPLETIONS = """stream = client.chat.completions.create(
    model="gpt-4",
    messages=[{"role": "user", "content": "Say this is a test"}],
    stream=True,
    ...
)
async for chunk in stream:
    if chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content or "", end="")
"""

VISION_MODEL = """import requests
from g4f.client import Client
from g4f.Provider import Bing

client = AsyncClient(
    provider=Bing
)

image = requests.get("https://my_website/image.jpg", stream=True).raw
# Or: image = open("local_path/image.jpg", "rb")

response = client.chat.completions.create(
    "",
    messages=[{"role": "user", "content": "what is in this picture?"}],
    image=image
)
print(response.choices[0].message.content)
"""

IMAGE_GENERATION = """response = await client.images.generate(
    model="dall-e-3",
    prompt="a white siamese cat",
    ...
)

image_url = response.data[0].url
"""

IMAGE_AS_BASE64 = """response = await client.images.generate(
    prompt="a cool cat",
    response_format="b64_json"
)

base64_text = response.data[0].b64_json
"""

ASYNCIO_GATHER = """import asyncio

from g4f.client import AsyncClient
from g4f.Provider import BingCreateImages, OpenaiChat, Gemini

async def main():
    client = AsyncClient(
        provider=OpenaiChat,
        image_provider=Gemini,
        # other parameters...
    )

    task1 = client.chat.completions.create(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Say this is a test"}],
    )
    task2 = client.images.generate(
        model="dall-e-3",
        prompt="a white siamese cat",
    )
    responses = await asyncio.gather(task1, task2)

    print(responses)

asyncio.run(main())
"""

PICTURE = png(6, 4)


@pytest.fixture
def painter():
    """The image provider: every request is answered with PICTURE, in base64."""
    with ScriptedUpstream(
        default=json_reply({"created": 1, "data": [{"b64_json": base64.b64encode(PICTURE).decode()}]})
    ) as server:
        yield server


def g4f_imports(upstream: ScriptedUpstream, painter: ScriptedUpstream) -> dict[str, str]:
    """Both import lines of the document's AsyncClient examples, ported. Gemini, the image provider, lists its image
    model, the one an example asking for no model gets."""
    return {
        "from g4f.client import AsyncClient": "from backend import AsyncClient",
        "from g4f.Provider import BingCreateImages, OpenaiChat, Gemini": providers(
            BingCreateImages=painter.base_url, OpenaiChat=upstream.base_url
        )
        + f"Gemini = Provider('openai', base_url='{painter.base_url}', image_models=['dall-e-3'])\n",
    }


async def with_client(namespace: Namespace, setup: str, *examples: str) -> None:
    try:
        for code in (setup, *examples):
            await namespace.run_async(code)
    finally:
        await namespace["client"].aclose()


async def test_004_text_completion(upstream, painter):
    namespace = Namespace()
    await with_client(
        namespace,
        port(ASYNC_CLIENT_INIT, imports=g4f_imports(upstream, painter)),
        port(ASYNC_TEXT_COMPLETIONS, imports={}),
    )
    assert namespace.output.getvalue() == f"{HELLO}\n"
    assert upstream.chat_requests()[0].body["model"] == "gpt-3.5-turbo"


async def test_004_streaming_completion(upstream, painter):
    upstream.enqueue(Reply.text(["This", " is", " a", " test."]))
    namespace = Namespace()
    await with_client(
        namespace,
        port(ASYNC_CLIENT_INIT, imports=g4f_imports(upstream, painter)),
        port(ASYNC_STREAMING_COMPLETIONS, imports={}),
    )
    assert namespace.output.getvalue() == "This is a test."
    assert upstream.chat_requests()[0].body["model"] == "gpt-4"


async def test_004_configuration_key_and_proxy(upstream):
    namespace = Namespace()
    with ForwardProxy() as proxy:
        configured = port(
            ASYNC_CLIENT_CONFIGURATION,
            imports={"from g4f.client import AsyncClient": "from backend import AsyncClient"},
            servers={"@host": f"@{proxy.address}", "    ...\n": f"    base_url='{upstream.base_url}',\n"},
        )
        await with_client(namespace, configured, port(ASYNC_TEXT_COMPLETIONS, imports={}))
    assert namespace.output.getvalue() == f"{HELLO}\n"
    assert upstream.chat_requests()[0].headers["authorization"] == "Bearer your_api_key_here"
    assert [(request.url, request.credentials) for request in proxy.requests] == [
        (f"{upstream.base_url}/chat/completions", "user:pass")
    ]


def test_004_vision(upstream):
    """The document imports `Client` and uses it as a synchronous client (no `await`), under the name `AsyncClient`:
    its import line binds that name to `Client`, the only reading under which the example runs."""
    namespace = Namespace()
    with ScriptedUpstream() as website:
        website.enqueue(Reply.body(PICTURE, "image/png"))
        code = port(
            VISION_MODEL,
            imports={
                "from g4f.client import Client": "from backend import Client as AsyncClient",
                "from g4f.Provider import Bing": providers(Bing=upstream.base_url),
            },
            models={'    "",\n': '    "gpt-4o",\n'},
            servers={"https://my_website/image.jpg": f"http://127.0.0.1:{website.port}/image.jpg"},
        )
        try:
            namespace.run(code)
        finally:
            namespace["client"].close()
    assert namespace.output.getvalue() == f"{HELLO}\n"
    sent = upstream.chat_requests()[0].body
    assert sent["model"] == "gpt-4o"
    text, picture = sent["messages"][-1]["content"]
    assert text == {"type": "text", "text": "what is in this picture?"}
    header, _, data = picture["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64"
    assert PILImage.open(io.BytesIO(base64.b64decode(data))).size == (6, 4)


async def test_004_image_generation_as_a_url(upstream, painter):
    namespace = Namespace()
    await with_client(
        namespace, port(ASYNC_CLIENT_INIT, imports=g4f_imports(upstream, painter)), port(IMAGE_GENERATION, imports={})
    )
    assert Path(namespace["image_url"]).read_bytes() == PICTURE  # the saved file
    assert (painter.requests[0].body["model"], painter.requests[0].body["prompt"]) == (
        "dall-e-3",
        "a white siamese cat",
    )


async def test_004_image_generation_as_base64(upstream, painter):
    namespace = Namespace()
    await with_client(
        namespace, port(ASYNC_CLIENT_INIT, imports=g4f_imports(upstream, painter)), port(IMAGE_AS_BASE64, imports={})
    )
    assert base64.b64decode(namespace["base64_text"]) == PICTURE
    assert (painter.requests[0].body["model"], painter.requests[0].body["prompt"]) == ("dall-e-3", "a cool cat")


def test_004_gather(upstream, painter):
    namespace = Namespace()
    namespace.run(port(ASYNCIO_GATHER, imports=g4f_imports(upstream, painter)))
    (responses,) = namespace.printed[0]
    chat, images = responses
    assert chat.choices[0].message.content == HELLO
    assert Path(images.data[0].url).read_bytes() == PICTURE
    assert upstream.chat_requests()[0].body["model"] == "gpt-3.5-turbo"
    assert painter.requests[0].body["model"] == "dall-e-3"
