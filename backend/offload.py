"""Work that grows with a conversation's size runs off the event loop once the conversation is big.

Everyone's requests are served by one event loop: a handler that spends a second on one visitor's chat makes every
other visitor wait that second (importing 12,000 empty messages froze the server for 21 s). Reading, saving,
showing or exporting a chat is linear in its messages, about 10-30 µs a message: under SMALL messages it takes a
few milliseconds at most and runs where it is called (a thread hop would cost about as much); from SMALL on it
runs on one of WORKERS threads of its own. Few, so that one visitor's big chats (however many
requests they send) occupy at most those, never the threads Gradio and the store use for everyone else; a third
big chat waits for one of them. (The threads share the interpreter's lock with the event loop, which still gets
it every few milliseconds: the loop slows down while they work, it does not stop.)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

SMALL = 200  # messages: below this, the work runs where it is called
WORKERS = 2

P = ParamSpec("P")
T = TypeVar("T")

_workers: list[ThreadPoolExecutor] = []  # made on first use


async def sized(messages: int, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)`, for work on a conversation of `messages` messages: here when it is small, else
    on one of the big chats' threads."""
    if messages < SMALL:
        return function(*args, **kwargs)
    return await on_worker(function, *args, **kwargs)


async def on_worker(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` on one of the big chats' threads (for work whose size is known only once done,
    such as reading an imported file)."""
    if not _workers:
        _workers.append(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="switchboard-big-chat"))
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_workers[0], call)
