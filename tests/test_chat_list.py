"""The sidebar's chat list as data: date groups in the visitor's time zone, titles made inert for Gradio's template,
and the actions the browser sends back checked before anything uses them."""

from __future__ import annotations

import datetime as dt

from backend import Backend, Summary, load_settings
from webui.app import build_app
from webui.chat.chat_list import action, group_of, inert, listing

UTC = dt.UTC


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def test_groups_follow_the_visitors_calendar_day():
    now = at(2026, 11, 26, 9)  # 09:00 UTC
    assert group_of(at(2026, 11, 26, 0, 5), now, 0) == "Today"
    assert group_of(at(2026, 11, 25, 23, 55), now, 0) == "Yesterday"
    assert group_of(at(2026, 11, 24, 12), now, 0) == "Previous 7 days"
    assert group_of(at(2026, 11, 19, 12), now, 0) == "Previous 7 days"
    assert group_of(at(2026, 11, 18, 12), now, 0) == "Older"
    # In New York (UTC-5, getTimezoneOffset 300) it is 04:00 on the 26th: 23:55 UTC on the 25th was 18:55 there,
    # yesterday; 03:00 UTC on the 26th was 22:00 on the 25th there: yesterday too.
    assert group_of(at(2026, 11, 26, 3), now, 300) == "Yesterday"
    assert group_of(at(2026, 11, 26, 6), now, 300) == "Today"
    # In Tokyo (UTC+9, offset -540) it is 18:00 on the 26th: 20:00 UTC on the 25th was 05:00 on the 26th there.
    assert group_of(at(2026, 11, 25, 20), now, -540) == "Today"
    assert group_of(at(2026, 11, 26, 10), now, 0) == "Today"  # a clock a little ahead is not "the future"


def test_listing_groups_in_order_and_marks_the_open_chat():
    now = at(2026, 11, 26, 9)
    chats = [
        Summary(id="a" * 16, title="newest", updated=at(2026, 11, 26, 8)),
        Summary(id="b" * 16, title="", updated=at(2026, 11, 25, 8)),
        Summary(id="c" * 16, title="old", updated=at(2025, 1, 1, 8)),
    ]
    value = listing(chats, "b" * 16, now=now)
    assert [group["name"] for group in value["groups"]] == ["Today", "Yesterday", "Older"]
    assert [chat["title"] for group in value["groups"] for chat in group["chats"]] == ["newest", "New chat", "old"]
    assert [chat["open"] for group in value["groups"] for chat in group["chats"]] == [False, True, False]
    assert value["empty"] == ""
    assert listing([], None, empty="No chats match") == {"groups": [], "empty": "No chats match"}


def test_titles_reach_the_template_inert():
    """Gradio evaluates the filled-in template as a JavaScript template literal: `${`, a backslash or a backtick in
    a title would be code; tags would be HTML. Each becomes a character reference the browser shows as it is."""
    hostile = "${document.title='pwned'}`\\x41<img src=x onerror=alert(1)>&\"'"
    made = inert(hostile)
    for dangerous in ("${", "`", "\\", "<", ">", '"', "'"):
        assert dangerous not in made, dangerous
    assert made == (
        "&#36;&#123;document.title=&#x27;pwned&#x27;&#125;&#96;&#92;x41&lt;img src=x onerror=alert(1)&gt;"
        "&amp;&quot;&#x27;"
    )
    value = listing([Summary(id="d" * 16, title=hostile, updated=0, snippet=hostile)], None, now=0)
    assert value["groups"][0]["chats"][0]["title"] == made
    assert value["groups"][0]["chats"][0]["snippet"] == made  # a search's text around the words found


def test_actions_from_the_browser_are_checked():
    def value(**found):
        return {"groups": [], "action": found}

    assert action(value(kind="open", id="e" * 16), "open") == {"id": "e" * 16}
    assert action(value(kind="open", id="e" * 16), "delete") is None  # another event's action
    assert action(value(kind="open", id=7), "open") is None
    assert action({"groups": []}, "open") is None
    assert action("not a dict", "open") is None
    assert action(value(kind="open", id="x" * 500), "open") == {"id": "x" * 64}  # the store refuses it then
    assert action(value(kind="rename", id="f" * 16, title="  New \n  name "), "rename") == {
        "id": "f" * 16,
        "title": "New name",
    }
    assert action(value(kind="rename", id="f" * 16, title="   "), "rename") is None
    assert len(action(value(kind="rename", id="f" * 16, title="t" * 999), "rename")["title"]) == 120
    assert action(value(kind="export", id="f" * 16, format="json"), "export") == {"id": "f" * 16, "format": "json"}
    assert action(value(kind="export", id="f" * 16, format="../../etc/passwd"), "export") is None


def test_the_search_box_holds_text_from_the_start(write_config, tmp_path):
    """Every handler of the sidebar gets the search box's value. A text box given no value is None in the page until
    it is drawn, and a message sent before the sidebar was drawn reached the handler with None as the search (a CI
    run: 'NoneType' object has no attribute 'strip', the reply never shown)."""
    config = f"""
        [app]
        data_dir = "{tmp_path / "data"}"
        [providers.cloud]
        kind = "openai"
        base_url = "http://127.0.0.1:9/v1"
        models = ["seer"]
        """
    app = build_app(Backend(load_settings(write_config(config))))
    values = {
        component["props"].get("elem_id"): component["props"].get("value")
        for component in app.get_config_file()["components"]
    }
    assert values["chat-search"] == ""
