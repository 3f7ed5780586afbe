"""Every JavaScript string of the Chat tab: the page's own script (run once when it loads), and the scripts events
run in the page before (or instead of) their step on the server. An event's script receives the event's inputs in
order and returns its inputs (or, with no step on the server, its outputs). The chat list's own script is part
of its component (chat_list.py), with the template it works on."""

from __future__ import annotations

# Back and forward move between chats opened in this tab (each has its address, ?chat=ID): the page is loaded
# again at the address moved to, which opens that chat.
#
# The chat follows a streaming reply only while it is scrolled to its end: scroll up to read, and it stays where you
# are until you scroll back down; sending a message always brings it (and the reply) into view.
PAGE_JS = """() => {
  window.addEventListener("popstate", () => window.location.reload());
  // Copying a message or the conversation gives what was said, not the notes beside it (provenance, reasoning,
  // errors): the Chatbot copies each note as its title and content, which webui/chat/reply.py wraps in asides.
  const clipboard = navigator.clipboard;
  if (clipboard && !clipboard.switchboardPlain) {
    const write = clipboard.writeText.bind(clipboard);
    const aside = "<!-- aside -->[^]*?<!-- /aside -->";
    const turn = new RegExp(`(^|\\n\\n)assistant: ${aside}`, "g");  // Copy conversation: a note is a turn
    const note = new RegExp(`(^|\\n)[^\\n]*\\n  ${aside}\\n?`, "g");  // Copy message: its title, then it
    clipboard.writeText = (text) => {
      const plain = String(text).includes("<!-- aside -->")
        ? String(text).replace(turn, "").replace(note, "$1").trim()
        : text;
      return write(plain);
    };
    clipboard.switchboardPlain = true;
  }
  // On a phone the sidebar is a drawer, closed at first (and when a window narrows to a phone's width, or New chat
  // is pressed in it): the chat and the message box are what the page shows.
  const narrow = window.matchMedia("(max-width: 768px)");
  const fold = () => document.querySelector("#sidebar.open")?.querySelector(".toggle-button")?.click();
  if (narrow.matches) fold();
  narrow.addEventListener("change", (change) => { if (change.matches) fold(); });
  document.addEventListener("click", (click) => {
    if (narrow.matches && click.target.closest?.("#new-chat")) fold();
  });
  let force = false;
  const follow = () => { force = true; };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && e.target.closest && e.target.closest("#message")) follow();
  }, true);
  document.addEventListener("click", (e) => { if (e.target.closest && e.target.closest("#send")) follow(); }, true);
  const watch = (wrap) => {
    if (wrap.dataset.following) return;
    wrap.dataset.following = "1";
    // At the end before this change (measured against the height before it, so a scroll that has not been
    // reported yet still counts): then stay at the end.
    let last = wrap.scrollHeight;
    new MutationObserver(() => {
      if (force || wrap.scrollTop + wrap.clientHeight >= last - 48) wrap.scrollTop = wrap.scrollHeight;
      force = false;
      last = wrap.scrollHeight;
    }).observe(wrap, {childList: true, subtree: true, characterData: true});
    wrap.scrollTop = wrap.scrollHeight;
  };
  const find = () => { const wrap = document.querySelector("#chatbot .bubble-wrap"); if (wrap) watch(wrap); };
  new MutationObserver(find).observe(document.body, {childList: true, subtree: true});
  find();
}"""


# Keeps the address bar on the open chat (?chat=ID) without reloading; one history entry per chat opened.
# A new chat that gets its first message takes the place of the empty page it was ("/" becomes "/?chat=ID"), so
# back goes to the chat before it, not through an empty page.
ADDRESS_JS = """(id) => {
  const url = new URL(window.location.href);
  const was = url.searchParams.get("chat") || "";
  if (was !== (id || "")) {
    if (id) url.searchParams.set("chat", id); else url.searchParams.delete("chat");
    if (was === "" && id) window.history.replaceState(null, "", url);
    else window.history.pushState(null, "", url);
  }
  return [];
}"""


def _focusing(first: str = "") -> str:
    """A step's page-side function that does `first` and gives the message box the focus back (after a reply,
    Stop, New chat, opening a chat: the next message needs no click). It runs before the step's own work and
    passes the step's inputs through unchanged."""
    return f"""(...inputs) => {{
  {first}
  setTimeout(() => document.querySelector("#message textarea")?.focus({{preventScroll: true}}), 0);
  return inputs.length === 1 ? inputs[0] : inputs;
}}"""


FOCUS_JS = _focusing()
# A chat picked in the sidebar (opened, new, imported) on another tab: the Chat tab comes on show with it.
SHOW_CHAT_JS = _focusing('document.querySelector("#chat-tab-button[aria-selected=false]")?.click();')

# A message sent takes from the message box what it sent, in the page (not by the server emptying the box): words
# typed while it was on its way, or while it waited for the reply being written to end, stay in the box, wherever
# they were typed into it. (If the sent text itself was changed meanwhile, the box is left as it is.)
TAKEN_JS = """(box, taken) => {
  const sent = JSON.parse(taken || "null");
  if (!sent || !box) return box;
  const text = (box.text || "").trimStart();
  const want = sent.text;
  let head = 0;
  while (head < want.length && head < text.length && text[head] === want[head]) head++;
  let tail = 0;
  while (tail < want.length - head && tail < text.length - head
         && text[text.length - 1 - tail] === want[want.length - 1 - tail]) tail++;
  const rest = head + tail === want.length ? text.slice(head, text.length - tail).trim() : text;
  return {text: rest, files: (box.files || []).filter((file) => !sent.files.includes(file.path))};
}"""

# The page's time zone (minutes behind UTC), for the chat list's date groups (Today, Yesterday...).
ZONE_JS = "() => new Date().getTimezoneOffset()"

# An export is downloaded as soon as its file is offered (a new link: each export is a file of its own).
DOWNLOAD_JS = """() => {
  const started = Date.now();
  const look = () => {
    const link = document.querySelector("#download a[data-testid='download-link']");
    if (link && link.href !== window.switchboardExported) {
      window.switchboardExported = link.href;
      link.click();
    } else if (Date.now() - started < 5000) setTimeout(look, 100);
  };
  look();
}"""
