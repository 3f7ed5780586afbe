"""Load: 100 concurrent chats through the real app (`python -m webui` in a subprocess) against a fast scripted
upstream (another subprocess). Every reply must arrive whole and exact, and the app's memory must come back near
where it was. The machinery, and why the memory bound is what it is, live in bench/load.py; figures are never
asserted here (CI machines are shared and noisy), only correctness and memory.

Two runs on one app: the same 100 sessions chatting again (open tabs sending another message), then 100 new
sessions per round (new visitors). Gradio keeps ~150 KB of state for each session it has seen, up to
`app.max_sessions`; the app here keeps 150, so after the warm-up the new visitors of each round push out the
oldest sessions instead of adding to memory.
"""

from __future__ import annotations

import pytest

from bench import load

pytestmark = pytest.mark.slow

CHATS, TOKENS, ROUNDS = 100, 300, 2
MAX_SESSIONS = 150  # room for every chat of a round at once, and no more


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("load")
    with load.running_stack(folder, TOKENS, concurrency=CHATS, max_sessions=MAX_SESSIONS) as running:
        yield running


@pytest.fixture(scope="module")
def same_tabs(stack) -> load.Report:
    return measured(stack, "reused")


@pytest.fixture(scope="module")
def new_visitors(stack) -> load.Report:
    return measured(stack, "fresh")


def measured(stack: load.Stack, sessions: str) -> load.Report:
    """One warm-up and ROUNDS rounds; the table is printed for `pytest -s` (figures are looked at, not asserted)."""
    report = load.measure(stack, CHATS, TOKENS, ROUNDS, sessions=sessions, settle=2, timeout=120)
    print(load.render(report))
    return report


def test_every_reply_arrives_whole_and_exact(same_tabs, new_visitors):
    for report in (same_tabs, new_visitors):
        assert report.complete, load.render(report)


def test_memory_returns_near_start_when_the_same_tabs_chat_again(same_tabs):
    assert same_tabs.memory_ok, load.render(same_tabs)


def test_memory_returns_near_start_after_new_visitors(new_visitors):
    assert new_visitors.memory_ok, load.render(new_visitors)
