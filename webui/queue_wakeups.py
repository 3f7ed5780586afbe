"""A queue that waits for work instead of polling for it: Gradio's queue loops sleep until there is something to do.

Gradio's queue (gradio/queueing.py, 6.x) runs two loops that poll: one for events to start, every millisecond
(`sleep_when_free = 0.001` on Linux) whenever no event waits to start, *also while jobs run*; one for progress to
send, every 10 ms while jobs run. At rest the event loop woke 1,100 times a second (2.4 % of a core with no page
open; py-spy: no Python work to speak of, only the wake-ups); with ten chats streaming, the looks for events to
start were 1,000 of the server's 1,150 wake-ups a second (its CPU for ten 300-token replies: 0.50 -> 0.46 s).

Here the queue module's `asyncio` is a stand-in whose `sleep`, for those two polling delays only:
- looking for events to start, while none waits: waits until an event is pushed (or a second at most);
- looking for progress to send, while no job has any pending: waits until a job reports progress (or a second),
  then Gradio's own 10 ms, so progress messages are still coalesced as Gradio meant.
Everything else is Gradio's own: with events waiting (all workers busy), it polls as before; an event pushed
starts at once. (If a later Gradio drops these names, the stand-in simply does nothing.)
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from gradio import queueing

IDLE_WAIT = 1.0  # seconds a queue loop sleeps at most between looks (it is woken as soon as there is work)


class _Wakeups:
    """One event loop's queues and what wakes their loops."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pushed = asyncio.Event()
        self.progressed = asyncio.Event()
        self.queues: weakref.WeakSet[Any] = weakref.WeakSet()

    def waiting(self) -> bool:
        """Whether any event waits to start."""
        return any(len(queue) for queue in self.queues)

    def progress_pending(self) -> bool:
        return any(event.progress_pending for queue in self.queues for job in queue.active_jobs if job for event in job)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakeups] = weakref.WeakKeyDictionary()
_start_polls: set[float] = set()  # the delay Gradio's loop looking for events to start polls with
_progress_polls: set[float] = set()  # the delay its loop looking for progress to send polls with


async def _wait(event: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):  # a look now and then, whatever happens
        await asyncio.wait_for(event.wait(), IDLE_WAIT)
    event.clear()


class _WaitingAsyncio:
    """`asyncio` as gradio.queueing sees it: the same, but for the polling sleeps of its loops (see above)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        wakeups = _loops.get(asyncio.get_running_loop())
        if wakeups is not None and delay in _start_polls and not wakeups.waiting():
            await _wait(wakeups.pushed)
            return result
        if wakeups is not None and delay in _progress_polls and not wakeups.progress_pending():
            await _wait(wakeups.progressed)
        return await asyncio.sleep(delay, result)


def _register(queue: Any, loop: asyncio.AbstractEventLoop) -> _Wakeups:
    """`queue`, on `loop`, among the queues whose polling sleeps wait; the loop's wake-ups."""
    _start_polls.add(queue.sleep_when_free)
    _progress_polls.add(queue.progress_update_sleep_when_free)
    wakeups = _loops.get(loop)
    if wakeups is None:
        wakeups = _loops[loop] = _Wakeups(loop)
    wakeups.queues.add(queue)
    return wakeups


def _progress_reported(queue: Any) -> None:
    """Wake the loop that sends `queue`'s progress (set_progress runs on worker threads too)."""
    for wakeups in list(_loops.values()):
        if queue in wakeups.queues:
            with contextlib.suppress(RuntimeError):  # (that loop is closed: nobody to wake)
                wakeups.loop.call_soon_threadsafe(wakeups.progressed.set)


def install() -> None:
    """Put the stand-in in place and make every queue wake its loops when an event is pushed or progress is
    reported (once)."""
    queue_class = getattr(queueing, "Queue", None)
    needed = ("push", "start", "set_progress")
    if (
        queue_class is None
        or getattr(queue_class, "_wakes_on_push", False)
        or not all(hasattr(queue_class, name) for name in needed)
    ):
        return
    original_push, original_start, original_progress = queue_class.push, queue_class.start, queue_class.set_progress

    async def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        wakeups = _register(self, asyncio.get_running_loop())
        try:
            return await original_push(self, *args, **kwargs)
        finally:
            wakeups.pushed.set()

    def start(self: Any) -> Any:
        """Known from the start (before any push): its loops wait from the first idle moment."""
        with contextlib.suppress(RuntimeError):  # (started outside an event loop: known at its first push)
            _register(self, asyncio.get_running_loop())
        return original_start(self)

    def set_progress(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original_progress(self, *args, **kwargs)
        finally:
            _progress_reported(self)

    queue_class.push = push
    queue_class.start = start
    queue_class.set_progress = set_progress
    queue_class._wakes_on_push = True
    queueing.asyncio = _WaitingAsyncio()  # type: ignore[assignment]
