"""An idle app that does not spin: Gradio's queue waits for work instead of polling for it while idle.

Gradio's queue (gradio/queueing.py, 6.x) runs two loops that poll: one for events to start, every millisecond
(`sleep_when_free = 0.001` on Linux), one for progress to send, every 10 ms. With nothing to do, the event loop
woke 1,100 times a second: 2.4 % of a core at rest, with no page open (py-spy: no Python work to speak of, only
the wake-ups). Here the queue module's `asyncio` is a stand-in whose `sleep`, for those two polling delays and
only while the queue has no job running, waits until an event is pushed (or a second at most) instead. While
jobs run, every sleep is Gradio's own, so nothing changes under load; an event pushed to an idle queue starts at
once, as before. (If a later Gradio drops these names, the stand-in simply does nothing.)
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from gradio import queueing

IDLE_WAIT = 1.0  # seconds an idle queue sleeps at most between looks (it is woken as soon as an event arrives)


class _Idle:
    """One event loop's idle queues and what wakes them."""

    def __init__(self) -> None:
        self.pushed = asyncio.Event()
        self.queues: weakref.WeakSet[Any] = weakref.WeakSet()

    def busy(self) -> bool:
        return any(job is not None for queue in self.queues for job in queue.active_jobs)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Idle] = weakref.WeakKeyDictionary()
_polls: set[float] = set()  # the delays Gradio's loops poll with


class _WaitingAsyncio:
    """`asyncio` as gradio.queueing sees it: the same, but for polling sleeps of an idle queue (see above)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        idle = _loops.get(asyncio.get_running_loop()) if delay in _polls else None
        if idle is None or idle.busy():
            return await asyncio.sleep(delay, result)
        with contextlib.suppress(TimeoutError):  # a look now and then, whatever happens
            await asyncio.wait_for(idle.pushed.wait(), IDLE_WAIT)
        idle.pushed.clear()
        return result


def _register(queue: Any, loop: asyncio.AbstractEventLoop) -> _Idle:
    """`queue`, on `loop`, among the idle queues its polling sleeps check; the loop's wake-up."""
    _polls.update({queue.sleep_when_free, queue.progress_update_sleep_when_free})
    idle = _loops.get(loop)
    if idle is None:
        idle = _loops[loop] = _Idle()
    idle.queues.add(queue)
    return idle


def install() -> None:
    """Put the stand-in in place and make every queue wake its loops when an event is pushed (once)."""
    queue_class = getattr(queueing, "Queue", None)
    if queue_class is None or getattr(queue_class, "_wakes_on_push", False) or not hasattr(queue_class, "push"):
        return
    original_push, original_start = queue_class.push, queue_class.start

    async def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        idle = _register(self, asyncio.get_running_loop())
        try:
            return await original_push(self, *args, **kwargs)
        finally:
            idle.pushed.set()

    def start(self: Any) -> Any:
        """Known from the start (before any push): its loops wait from the first idle moment."""
        with contextlib.suppress(RuntimeError):  # (started outside an event loop: known at its first push)
            _register(self, asyncio.get_running_loop())
        return original_start(self)

    queue_class.push = push
    queue_class.start = start
    queue_class._wakes_on_push = True
    queueing.asyncio = _WaitingAsyncio()  # type: ignore[assignment]
