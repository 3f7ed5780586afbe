"""The sidebar's chat list: chats grouped by date (Today, Yesterday, Previous 7 days, Older), the open one marked,
each with a menu (rename, export, delete); in a search's results, each with the text around the words found. A
`gr.HTML` with a template; what the visitor does in it comes back as an `action` in its value, through one event
per kind (select: open, edit: rename, delete, download: export).

Titles are the visitor's own text. Gradio evaluates an HTML template as a JavaScript template literal after
Handlebars has filled it in, and Handlebars escapes neither `$`, `{` nor `\\`: a title such as `${...}` would run
as code. So every text reaches the template through `inert` (HTML-escaped, and `$`, `\\` and the backtick as
character references), never through `{{...}}` alone.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any

import gradio as gr

from backend import Summary

GROUPS = ("Today", "Yesterday", "Previous 7 days", "Older")
ACTIONS = {"open": "select", "rename": "edit", "delete": "delete", "export": "download"}
EXPORT_FORMATS = ("md", "json")
TITLE_LIMIT = 120

_INERT = str.maketrans({"$": "&#36;", "\\": "&#92;", "`": "&#96;", "{": "&#123;", "}": "&#125;"})

TEMPLATE = """
<nav class="chat-groups" aria-label="Chats">
{{#if value.empty}}<p class="empty">{{{value.empty}}}</p>{{/if}}
{{#each value.groups}}
<section class="group"><h3>{{{this.name}}}</h3><ul>
{{#each this.chats}}
<li class="chat{{#if this.open}} open{{/if}}" data-id="{{{this.id}}}">
<button type="button" class="pick" title="{{{this.title}}}">{{{this.title}}}</button>
<button type="button" class="more" aria-label="Rename, export or delete" title="Rename, export or delete">
<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true"><circle cx="3" cy="8" r="1.5"/>
<circle cx="8" cy="8" r="1.5"/><circle cx="13" cy="8" r="1.5"/></svg></button>
{{#if this.snippet}}<p class="snippet">{{{this.snippet}}}</p>{{/if}}
</li>
{{/each}}
</ul></section>
{{/each}}
</nav>
"""

CSS = """
nav.chat-groups { display: flex; flex-direction: column; gap: 10px; }
p.empty { color: var(--body-text-color-subdued); margin: 8px 4px; }
section.group h3 { font-size: 0.8em; font-weight: 600; color: var(--body-text-color-subdued);
  margin: 0 8px 4px; }
section.group ul { list-style: none; margin: 0; padding: 0; }
li.chat { display: grid; grid-template-columns: minmax(0, 1fr) auto; align-items: center; border-radius: 8px;
  position: relative; }
li.chat p.snippet { grid-column: 1 / -1; margin: -4px 8px 6px; font-size: 0.82em; line-height: 1.35;
  color: var(--body-text-color-subdued); overflow: hidden; display: -webkit-box; -webkit-box-orient: vertical;
  -webkit-line-clamp: 2; cursor: pointer; }
li.chat:hover { background: var(--background-fill-primary); }
li.chat.open { background: var(--color-accent-soft); box-shadow: inset 3px 0 0 var(--color-accent); }
li.chat button.pick { flex: 1; min-width: 0; text-align: left; padding: 7px 8px; background: none; border: 0;
  color: var(--body-text-color); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; cursor: pointer;
  font: inherit; }
li.chat button.more { flex: none; width: 30px; height: 30px; border: 0; background: none; border-radius: 6px;
  color: var(--body-text-color-subdued); cursor: pointer; opacity: 0.35; display: grid; place-items: center; }
li.chat:hover button.more, li.chat.open button.more, li.chat button.more:focus-visible { opacity: 1; }
li.chat button.more svg { fill: currentColor; }
li.chat input.rename { flex: 1; min-width: 0; margin: 2px 4px; padding: 5px 6px; font: inherit;
  border: 1px solid var(--color-accent); border-radius: 6px; background: var(--input-background-fill);
  color: var(--body-text-color); }
.chat-menu { position: absolute; right: 4px; top: 32px; z-index: 50; min-width: 170px; padding: 4px;
  display: flex; flex-direction: column; background: var(--background-fill-primary);
  border: 1px solid var(--border-color-primary); border-radius: 10px; box-shadow: var(--shadow-drop-lg); }
.chat-menu.up { top: auto; bottom: 32px; }
.chat-menu button { text-align: left; padding: 7px 10px; border: 0; background: none; border-radius: 6px;
  color: var(--body-text-color); cursor: pointer; font: inherit; font-weight: normal; }
.chat-menu button:hover, .chat-menu button:focus-visible { background: var(--background-fill-secondary); }
.chat-menu button.danger { color: var(--error-text-color, #dc2626); }
.chat-menu p { margin: 6px 10px; font-weight: normal; }
"""

# Event delegation on the list: a click on a chat opens it; its menu renames it in place (Enter or leaving the
# field keeps the new title, Escape keeps the old), exports it, or deletes it after a second click. On a phone the
# drawer the list sits in closes when a chat is picked. The list is drawn again whenever its value changes (a
# reply ending, another tab's change): an open menu or title field is put back in its chat's new row.
JS = """
const open = {menu: null, field: null, id: null};
const act = (kind, item, extra) => {
  const id = item.dataset.id;
  let groups = props.value.groups;
  if (kind === "open") {  // marked open at once (see the open event's handler)
    groups = groups.map((group) => ({...group, chats: group.chats.map((chat) => ({...chat, open: chat.id === id}))}));
  }
  props.value = {...props.value, groups, action: {kind, id, ...(extra || {})}};
  trigger(EVENTS[kind]);
};
const closeMenus = (refocus) => {
  element.querySelectorAll(".chat-menu").forEach((menu) => {
    if (refocus) menu.parentElement?.querySelector("button.more")?.focus();
    menu.remove();
  });
  open.menu = null;
};
// The list scrolls inside the sidebar: a menu that would reach past its bottom opens upwards.
const scroller = () => element.closest("#chat-list") || element;
const row = (id) => [...element.querySelectorAll("li.chat")].find((item) => item.dataset.id === id);
new MutationObserver(() => {
  if (!open.id || (open.menu?.isConnected ?? true) && (open.field?.isConnected ?? true)) return;
  const item = row(open.id);
  if (!item) { open.menu = open.field = null; return; }
  if (open.menu && !open.menu.isConnected) item.appendChild(open.menu);
  if (open.field && !open.field.isConnected) {
    item.querySelector("button.pick")?.replaceWith(open.field);
    open.field.focus();
  }
}).observe(element, {childList: true, subtree: true});
const closeDrawer = () => {
  if (!window.matchMedia("(max-width: 768px)").matches) return;
  const sidebar = element.closest(".sidebar");
  if (sidebar && sidebar.classList.contains("open")) sidebar.querySelector(".toggle-button")?.click();
};
const button = (label, onClick, danger) => {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
};
const rename = (item) => {
  const pick = item.querySelector("button.pick");
  const input = document.createElement("input");
  input.className = "rename";
  input.maxLength = LIMIT;
  input.value = pick.textContent;
  input.setAttribute("aria-label", "New title");
  let done = false;
  const finish = (keep) => {
    if (done) return;
    done = true;
    open.field = null;
    const title = input.value.trim();
    if (keep && title && title !== pick.textContent) act("rename", item, {title});
    else input.replaceWith(pick);
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); finish(true); }
    if (e.key === "Escape") { e.preventDefault(); finish(false); }
  });
  // Leaving the field keeps the title; the field moved to a redrawn row is not leaving it.
  input.addEventListener("blur", () => setTimeout(() => {
    if (input.isConnected && document.activeElement !== input) finish(true);
  }, 0));
  pick.replaceWith(input);
  open.field = input;
  open.id = item.dataset.id;
  input.focus();
  input.select();
};
const menu = (item) => {
  const box = document.createElement("div");
  box.className = "chat-menu";
  box.setAttribute("role", "menu");
  const main = () => {
    box.replaceChildren(
      button("Rename", () => { closeMenus(); rename(item); }),
      button("Export as Markdown", () => { closeMenus(); act("export", item, {format: "md"}); }),
      button("Export as JSON", () => { closeMenus(); act("export", item, {format: "json"}); }),
      button("Delete", confirm, true),
    );
  };
  const confirm = () => {
    const ask = document.createElement("p");
    ask.textContent = "Delete this chat?";
    const cancel = button("Cancel", () => { main(); box.querySelector("button").focus(); });
    box.replaceChildren(ask, button("Delete", () => { closeMenus(); act("delete", item); }, true), cancel);
    cancel.focus();
  };
  main();
  item.appendChild(box);
  if (box.getBoundingClientRect().bottom > scroller().getBoundingClientRect().bottom) box.classList.add("up");
  open.menu = box;
  open.id = item.dataset.id;
  box.querySelector("button").focus();
};
element.addEventListener("click", (e) => {
  const item = e.target.closest("li.chat");
  if (!item || e.target.closest(".chat-menu") || e.target.closest("input.rename")) return;
  if (e.target.closest("button.more")) {
    const had = item.querySelector(".chat-menu");
    closeMenus();
    if (!had) menu(item);
    return;
  }
  closeMenus();
  act("open", item);
  closeDrawer();
});
document.addEventListener("click", (e) => { if (!element.contains(e.target)) closeMenus(); });
element.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenus(true); });
"""


def chat_list(elem_id: str = "chat-list") -> gr.HTML:
    script = f"const EVENTS = {json.dumps(ACTIONS)};\nconst LIMIT = {TITLE_LIMIT};\n{JS}"
    return gr.HTML(
        value=listing([], None),
        html_template=TEMPLATE,
        css_template=CSS,
        js_on_load=script,
        elem_id=elem_id,
        apply_default_css=False,
    )


def inert(text: str) -> str:
    """`text` as HTML that the template shows as it is and never evaluates (see the module's note)."""
    return html.escape(text, quote=True).translate(_INERT)


def group_of(updated: float, now: float, offset_minutes: int) -> str:
    """The date group of a chat last changed at `updated`, in the visitor's time zone (`offset_minutes` as
    JavaScript's getTimezoneOffset gives it: minutes behind UTC)."""
    shift = -offset_minutes * 60
    day = int((now + shift) // 86400) - int((updated + shift) // 86400)
    if day <= 0:
        return GROUPS[0]
    if day == 1:
        return GROUPS[1]
    if day <= 7:
        return GROUPS[2]
    return GROUPS[3]


def listing(
    summaries: Sequence[Summary],
    open_id: str | None,
    *,
    empty: str = "",
    offset_minutes: int = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The list's value: the chats (newest first) under their date groups, `open_id` marked; `empty` said when
    there are none."""
    now = time.time() if now is None else now
    groups: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        chat = {
            "id": inert(summary.id),
            "title": inert(summary.title or "New chat"),
            "snippet": inert(_snippet(summary)),
            "open": summary.id == open_id,
        }
        groups.setdefault(group_of(summary.updated, now, offset_minutes), []).append(chat)
    ordered = [{"name": inert(name), "chats": groups[name]} for name in GROUPS if name in groups]
    return {"groups": ordered, "empty": inert(empty) if not summaries else ""}


def _snippet(summary: Summary) -> str:
    """A search's text around the words found, on one line, without the title it may start with (what search
    looks in starts with the title, shown just above)."""
    snippet = " ".join(summary.snippet.split())
    title = " ".join(summary.title.split())
    return snippet[len(title) :].lstrip() if title and snippet.startswith(title + " ") else snippet


def action(value: Any, kind: str) -> dict[str, str] | None:
    """The visitor's action of `kind` the list's value carries, checked (it comes from the browser): its chat id,
    and for a rename the new title (spaces collapsed, at most TITLE_LIMIT characters), for an export the format.
    None when there is none or it is malformed."""
    found = value.get("action") if isinstance(value, dict) else None
    if not isinstance(found, dict) or found.get("kind") != kind or not isinstance(found.get("id"), str):
        return None
    checked = {"id": found["id"][:64]}
    if kind == "rename":
        title = " ".join(str(found.get("title", "")).split())[:TITLE_LIMIT]
        if not title:
            return None
        checked["title"] = title
    if kind == "export":
        if found.get("format") not in EXPORT_FORMATS:
            return None
        checked["format"] = found["format"]
    return checked
