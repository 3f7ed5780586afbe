"""The Chat tab: model picker, streamed replies with Stop / Retry / Undo / Edit, settings, and the `chat` API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import gradio as gr

from backend import (
    DOCUMENT_EXTENSIONS,
    Backend,
    ChatRequest,
    Conversation,
    ConversationError,
    ConversationStore,
    Document,
    InvalidImageError,
    ShownChat,
    StaleConversationError,
    StoredMessage,
    SwitchboardError,
    TextDelta,
    TooManyRequestsError,
    VisitorLimits,
    check_fits,
    is_document,
    model_messages,
    sized,
    validate_image,
)

from . import history, model_info
from .chat_list import action, chat_list, listing
from .compare import MAX_MODELS as MAX_COMPARED
from .compare import Compared, build_compare, compare_answers, compare_problem, shown_columns
from ..identity import owner_of, visitor_of
from .presets import build_presets, wire_presets
from ..refusals import refusal, said, too_long, verdict
from .reply import ReplyView, message_text
from ..streaming import Pacer, batched, paced

log = logging.getLogger(__name__)

# Maths between $$…$$, \(…\) and \[…\]. A single $ is not a delimiter: "$5 and $10" is money, not maths; an
# unambiguous inline $x^2$ is turned into \(x^2\) before it is shown (reply.inline_math).
LATEX: list[dict[str, str | bool]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
]

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

PICK_VERSION = "Pick a version to show it"

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


def build_chat_tab(backend: Backend, limits: VisitorLimits, pacer: Pacer, page: gr.Blocks) -> gr.Sidebar:
    """Lay out the Chat tab inside the current Blocks context and wire its events, and what `page` does when it
    opens: list the owner's chats, open the one its address names, follow its reply if one is being written.
    The sidebar (the chat list) is returned unrendered, for the page to place outside its tabs: it stays where it
    is whichever tab is on show, and what is picked in it shows on the Chat tab (SHOW_CHAT_JS)."""
    choices = [(choice.label, choice.id) for choice in backend.models.chat_choices()]
    default = backend.models.default_chat
    store = backend.conversations
    shared = backend.shared
    describe_model = _model_line(backend)

    # The sidebar: new chat and search at its top, the chat list scrolling under them, import at its foot.
    # Collapsible on a desktop; on a phone a drawer, closed at first (the chat and the message box come first).
    with gr.Sidebar(width=290, elem_id="sidebar", render=False) as sidebar:
        new_chat = gr.Button("+ New chat", elem_id="new-chat")
        # Empty text from the start: a box given no value is None in the page until it is drawn, and a message sent
        # before that would send None as the search.
        search = gr.Textbox("", placeholder="Search chats", show_label=False, elem_id="chat-search")
        chats = chat_list()
        # An export's file: in the page (hidden) for the download the page starts at once (DOWNLOAD_JS).
        download = gr.File(label="Export", visible="hidden", interactive=False, elem_id="download")
        importer = gr.UploadButton(
            "Import chat (.json)", file_types=[".json"], file_count="single", size="sm", elem_id="import"
        )
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            with gr.Row(equal_height=True, elem_id="model-row"):
                model = gr.Dropdown(
                    choices=choices, value=default, label="Model", elem_id="model-picker", filterable=True, scale=3
                )
                # Turns with more than one version (an edited question, a regenerated answer): pick one to show it
                # and what followed it. Beside the model, so showing it moves nothing down the page.
                # (A value outside the choices is allowed: a page whose session the server forgot still offers
                # what it listed; the handler checks the pick against the stored chat.)
                versions = gr.Dropdown(
                    choices=[], label="Versions", visible=False, elem_id="versions", scale=2, allow_custom_value=True
                )
            # What the picked model can do, and how much of its context the open chat takes.
            model_line = gr.HTML(_model_html(backend, default), elem_id="model-info")
            chatbot = gr.Chatbot(
                elem_id="chatbot",
                show_label=False,
                autoscroll=False,  # the page follows a reply only while it is scrolled to the end (app.PAGE_JS)
                height="max(280px, calc(100dvh - 430px))",  # the message box and Settings stay in view
                buttons=["copy", "copy_all"],
                latex_delimiters=LATEX,
                editable="user",
                placeholder="Ask anything. Replies stream here; Stop ends one at once.",
                feedback_options=None,
            )
            with gr.Row(equal_height=True):
                textbox = gr.MultimodalTextbox(
                    placeholder="Message (Enter to send), or attach files",
                    show_label=False,
                    file_types=["image", *sorted(DOCUMENT_EXTENSIONS)],
                    file_count="multiple",
                    sources=["upload"],
                    submit_btn=False,
                    lines=1,
                    max_lines=8,
                    scale=8,
                    autofocus=True,
                    elem_id="message",
                )
                send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=90, visible=False, elem_id="stop")
            comparing = build_compare(choices)
            with gr.Accordion("Settings", open=False):
                presets = build_presets()
                system = gr.Textbox(
                    label="System prompt", lines=2, placeholder="You are a helpful assistant.", elem_id="system"
                )
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                    top_p = gr.Slider(0, 1, value=1.0, step=0.01, label="Top p")
                    max_tokens = gr.Number(value=0, precision=0, minimum=0, label="Max tokens (0: model default)")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
    # The open conversation as this page shows it: a ShownChat (which one, the revision read, the branch on show), or
    # None before the first message. The conversation itself is shared by every page showing it (backend.shared).
    current = gr.State(None)
    # The open conversation's id, kept by the page (and in its address, ?chat=ID): Gradio forgets a session's
    # state when it evicts the session (app.max_sessions) or restarts, and the tab must then go on with the same
    # conversation, not a new one. In the DOM (hidden), so its change can update the address bar.
    open_id = gr.Textbox(visible="hidden", elem_id="open-chat-id")
    taken = gr.Textbox(visible="hidden")  # what the last message sent took from the box (TAKEN_JS), as JSON
    zone = gr.Number(visible=False)  # the page's time zone, given by the page when it loads (ZONE_JS)

    settings = [model, system, temperature, top_p, max_tokens, seed]
    shows = _Showing()
    picking = _Turns()

    async def reopened(on_show: ShownChat | None, conversation_id: str | None, owner: str) -> Conversation | None:
        """The open conversation as this page shows it (`on_show`, what the session keeps of it), or as stored
        now when the session keeps none (the page's address names it: its session was forgotten); never another
        owner's (only `owner`'s conversations are looked in); None when none is open. Shared with other pages: a
        change is made to a fork of it (`_change`, which merges what another tab changed meanwhile)."""
        if on_show is not None:
            conversation = await shared.view(owner, on_show)
            if conversation is None:
                raise refusal("This chat was deleted in another tab or window; start a new one.")
            return conversation
        if not conversation_id:
            return None
        try:
            return await shared.latest(owner, conversation_id)
        except SwitchboardError:
            return None

    def kept(owner: str, conversation: Conversation | None) -> ShownChat | None:
        """What the session keeps of the conversation it shows from now on."""
        return None if conversation is None else shared.keep(owner, conversation)

    async def listed(request: gr.Request, selected: str | None = None, query: str = ""):
        """The owner's chats matching the search box, grouped by date in the page's time zone, `selected` marked;
        a search that finds none says so where the list would be."""
        query = query or ""  # as the page sends it (None, from a page that had not drawn the box)
        found = await store.list(owner_of(request), query)
        empty = "No chats match" if query.strip() else "No chats yet"
        return listing(found, selected, empty=empty, offset_minutes=shows.offset(request))

    async def shown(owner: str, conversation: Conversation | None, *, live: bool | None = None):
        """The Chatbot's messages and the versions picker for the conversation; without the reply being generated
        at its end when `live` (by default: when one is being generated in it), as the page's follower draws it."""
        if conversation is None:
            return [], gr.update(choices=[], value=None, visible=False)
        if live is None:  # generated here; or, with replicas, maybe on another (streaming in the store until it ends)
            live = backend.replies.running(owner, conversation.id) is not None or (
                backend.replies.relay is not None and history.reply_streaming(conversation)
            )
        messages, choices, on_show = await history.view(backend, owner, conversation, live=live)
        # No turn on show has versions (an exchange was undone): the picker says what it is for, not nothing.
        picker = gr.update(choices=choices, value=PICK_VERSION if on_show is None else on_show, visible=bool(choices))
        return messages, picker

    async def reply_to(
        request: gr.Request, conversation: Conversation | None, change: Callable[[Conversation], object], *chosen
    ) -> Conversation:
        """Make `change` (it adds or picks the question to answer) to the open conversation, add the reply to it,
        save, and start generating the reply on the server. When another tab changed the chat meanwhile, the
        change is made to what is stored now (nothing of either is lost). The visitor's slot is taken before
        anything is saved: a refusal keeps nothing."""
        owner, visitor = owner_of(request), visitor_of(request)
        model_id, system_prompt, temp, top, max_new, seed_value = chosen
        if problem := _text_problem(backend, system_prompt or "", "system prompt"):
            raise refusal(problem)  # (stored with the chat's settings, and sent with every reply)
        if conversation is not None and await backend.replies.find(owner, conversation.id):
            raise refusal("A reply is still being written in this chat: wait for it, or Stop it.")

        def answered(target: Conversation) -> None:
            change(target)
            target.add(StoredMessage(role="assistant", status="streaming", model=model_id or default))
            target.model = model_id
            target.settings = {
                "system_prompt": system_prompt or "",
                "temperature": temp,
                "top_p": top,
                "max_tokens": max_new,
                "seed": seed_value,
            }

        async with contextlib.AsyncExitStack() as held:
            try:
                await held.enter_async_context(limits.hold(visitor))
            except TooManyRequestsError as error:
                raise refusal(error.user_message()) from None
            try:
                stored = await _change(store, owner, conversation or Conversation(), answered)
            except SwitchboardError as error:
                raise refusal(error.user_message()) from None
            try:
                chat_request = ChatRequest(
                    model=model_id or default,
                    messages=await model_messages(store, owner, stored, system_prompt or ""),
                    temperature=temp,
                    top_p=top if top is not None and top < 1 else None,  # 1 is everyone's default; some refuse it
                    max_tokens=int(max_new) if max_new and max_new > 0 else None,
                    seed=int(seed_value) if seed_value is not None and seed_value >= 0 else None,
                )
                slot = contextlib.AsyncExitStack()
                backend.replies.start(owner, stored, chat_request, release=lambda: slot.aclose())
                # Started: the slot goes with the reply, given back when it ends. (Its task runs only once this
                # handler awaits again, so it cannot end before this line.)
                slot = held.pop_all()
            except SwitchboardError as error:  # the reply could not start: it is stored as failed, with the reason
                assert stored.leaf is not None
                failed = StoredMessage(role="assistant", status="failed", error=error.user_message(), model=model_id)
                await store.finish_reply(owner, stored.id, stored.leaf, failed)
        return stored

    async def follow(chat_history: list, conversation, query: str, request: gr.Request) -> AsyncIterator:
        """Show the reply being generated in the open chat, from its first event, live to its end; then the chat
        as stored. Closing the page (or this step being cancelled) stops only the showing, not the reply."""
        owner = owner_of(request)
        if conversation is None:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        running = await backend.replies.find(owner, conversation.id)
        if running is None:  # it ended already (a quick refusal upstream): show it as stored
            fresh = await reopened(None, conversation.id, owner)
            yield (
                *(await shown(owner, fresh)),
                kept(owner, fresh) or gr.skip(),
                await listed(request, conversation.id, shows.query(request, query)),
            )
            return
        view = ReplyView(running.requested)
        yield chat_history + view.messages(), gr.skip(), gr.skip(), gr.skip()  # a "waiting" line at once
        async for batch in paced(running, pacer, shown=len(chat_history)):
            if not shows.still(request, running.conversation_id):
                # The page opened another chat meanwhile, which is on show now. (A step's last output is applied
                # again when it ends: it must not be this chat's view.)
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            for event in batch:
                view.apply(event)
            yield chat_history + view.messages(), gr.skip(), gr.skip(), gr.skip()
        await running.wait()
        if not shows.still(request, running.conversation_id) or await backend.replies.find(
            owner, running.conversation_id
        ):
            # Another chat is on show, or a newer reply in this one (a message sent meanwhile) is being written:
            # its own step shows it, and this one's last output must not draw over it.
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        fresh = await reopened(None, running.conversation_id, owner)
        # The search box as it is now (it may have changed while the reply was written).
        chat_listing = await listed(request, running.conversation_id, shows.query(request, query))
        yield *(await shown(owner, fresh)), kept(owner, fresh), chat_listing

    async def follow_running(chat_history: list, conversation, query: str, request: gr.Request) -> AsyncIterator:
        """`follow`, for a chat opened or reloaded while its reply is written: Stop instead of Send meanwhile."""
        owner = owner_of(request)
        if conversation is None or await backend.replies.find(owner, conversation.id) is None:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), *idle()
            return
        last = (gr.skip(),) * 4
        async for update in follow(chat_history, conversation, query, request):
            yield *update, *busy()
            last = update
        if not shows.still(request, conversation.id):  # another chat is on show: leave its view alone
            last = (gr.skip(),) * 4
        yield *last, *idle()  # the chat as stored once more: the step's result holds the whole of it

    def busy():
        """While a reply is written: Stop instead of Send. (The message box stays open for the next message: sent
        meanwhile, it is sent when the reply ends. It is no output of the steps that follow a reply, or Gradio
        would hold it as pending and show nothing.)"""
        return gr.update(visible=False), gr.update(visible=True, interactive=True)

    def idle():
        return gr.update(visible=True), gr.update(visible=False, interactive=True)

    async def add_message(
        message: dict | None,
        chat_history: list,
        conversation,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        query,
        conversation_id,
        request: gr.Request,
    ):
        """Save the message (checked by `check_message` first) and start its reply; show it. The message counts
        against the visitor's limits here, where it is saved: refused, nothing is kept."""
        text = ((message or {}).get("text") or "").strip()
        pictures, attached = _attachments(message)
        if problem := _text_problem(backend, text) or _text_problem(backend, system_prompt or "", "system prompt"):
            raise refusal(problem)
        try:
            limit = backend.settings.app.max_upload_bytes
            images = [await validate_image(path, max_bytes=limit) for path in pictures]
            documents = [await _read(backend, path, name, request) for path, name in attached]
            await limits.count(visitor_of(request))
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner)
        running = await backend.replies.find(owner, conversation.id) if conversation is not None else None
        if running is not None:
            # Sent while a reply is written: it waits for that reply to end (the text stays in the box meanwhile,
            # and what is typed after it stays once it is sent: TAKEN_JS), then follows it in the chat.
            gr.Info("Your message is sent when the reply being written ends.", duration=4)
            await running.wait()
            conversation = await reopened(None, running.conversation_id, owner)
        question = await history.store_user_message(backend, owner, text, images, documents)
        after = conversation.leaf if conversation is not None else None
        stored = await reply_to(
            request,
            conversation,
            lambda target: target.add(question.model_copy(), after=after),
            model_id,
            system_prompt,
            temp,
            top,
            max_new,
            seed_value,
        )
        chat_listing = await listed(request, stored.id, query)
        messages, picker = await shown(owner, stored, live=True)
        shows.chat(request, stored.id)
        files = [_file_path(file) for file in (message or {}).get("files") or []]
        sent = json.dumps({"text": text, "files": files})
        return messages, picker, sent, *busy(), kept(owner, stored), chat_listing, stored.id

    async def check_message(
        message: dict | None,
        chat_history: list,
        conversation,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        query,
        conversation_id,
        request: gr.Request,
    ):
        """Refusals before anything is saved or sent, said at the message box, where the text and attachments
        stay. Gradio runs it on the server when the event joins its queue, with the event's inputs: hence the
        same parameters as add_message. (The reply checks limits, images and capabilities again on its way.)"""
        problem = _text_problem(backend, system_prompt or "", "system prompt")
        problem = problem or await _message_problem(backend, limits, message, model_id or default, request)
        return verdict(problem, inputs=11)

    async def check_limits(
        chat_history,
        conversation,
        conversation_id,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        request: gr.Request,
    ):
        return verdict(await _limit_problem(limits, request), inputs=9)

    async def retry(
        chat_history: list,
        conversation,
        conversation_id,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        data: gr.RetryData,
        request: gr.Request,
    ):
        """Regenerate an answer: a new version of it, after the same question; the old one stays a version."""

        def after_the_question(conversation: Conversation) -> Callable[[Conversation], object]:
            question = history.user_node(conversation, chat_history, data.index)
            return lambda target: target.cut_after(question)

        chosen = (model_id, system_prompt, temp, top, max_new, seed_value)
        return await answer_again(request, conversation, conversation_id, chosen, after_the_question)

    async def edit(
        chat_history: list,
        conversation,
        conversation_id,
        model_id,
        system_prompt,
        temp,
        top,
        max_new,
        seed_value,
        data: gr.EditData,
        request: gr.Request,
    ):
        """Edit a question: the edited one is a new version of it (what followed the old one stays with it)."""
        text = message_text(data.value)
        text = text.strip() if isinstance(text, str) else ""
        if problem := ("Type a message first." if not text else _text_problem(backend, text)):
            # Said in a toast; the chat shows what it showed before the edit (an error would cover every output).
            gr.Warning(problem)
            owner = owner_of(request)
            before = await reopened(conversation, conversation_id, owner)
            return *(await shown(owner, before)), gr.skip(), *idle(), gr.skip(), gr.skip(), gr.skip()

        def edited_question(conversation: Conversation) -> Callable[[Conversation], object]:
            old = conversation.nodes[history.user_node(conversation, chat_history, data.index)]
            edited = StoredMessage(role="user", text=text, images=old.images)
            return lambda target: target.add(edited.model_copy(), after=old.parent)

        chosen = (model_id, system_prompt, temp, top, max_new, seed_value)
        return await answer_again(request, conversation, conversation_id, chosen, edited_question)

    async def answer_again(
        request: gr.Request,
        conversation,
        conversation_id,
        chosen: tuple,
        question: Callable[[Conversation], Callable[[Conversation], object]],
    ):
        """Retry and Edit: `question(conversation)` is the change that ends the branch with the question to
        answer; then a new reply to it, as for a sent message."""
        await _count(limits, request)
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner)
        if conversation is None:
            raise refusal("Open a chat first.")
        try:
            change = question(conversation)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        stored = await reply_to(request, conversation, change, *chosen)
        messages, picker = await shown(owner, stored, live=True)
        shows.chat(request, stored.id)
        return messages, picker, gr.skip(), *busy(), kept(owner, stored), gr.skip(), gr.skip()

    async def undo(
        chat_history: list, conversation, conversation_id, draft: dict | None, data: gr.UndoData, request: gr.Request
    ):
        """Take the last exchange off the visible branch (it stays a version) and put its question back in the
        message box, before what was typed there (which stays)."""
        owner = owner_of(request)
        conversation = await reopened(conversation, conversation_id, owner)
        if conversation is None or await backend.replies.find(owner, conversation.id):
            return said("Nothing to undo while a reply is being written.", 4)
        try:
            question = conversation.nodes[history.user_node(conversation, chat_history, data.index)]
        except SwitchboardError as error:
            return said(error.user_message(), 4)
        before = question.parent
        try:
            stored = await _change(store, owner, conversation, lambda target: target.cut_after(before))
        except SwitchboardError as error:
            return said(error.user_message(), 4)
        files = history.viewable_images(backend, owner, question.images)
        typed = ((draft or {}).get("text") or "").strip()  # (Gradio has checked the box's value)
        text = f"{question.text}\n\n{typed}" if typed else question.text
        box = {"text": text, "files": [*files, *((draft or {}).get("files") or [])]}
        return *(await shown(owner, stored)), box, kept(owner, stored)

    async def pick_version(node, conversation, conversation_id, request: gr.Request):
        """Show another version of a turn (and what followed it)."""
        owner = owner_of(request)
        chat_id = conversation_id or getattr(conversation, "id", None) or ""
        # One pick can arrive twice at once (the picker sends its value again as it closes): one at a time per
        # chat, each reading the chat as stored, so the second finds the first made and changes nothing.
        async with picking.hold((owner, chat_id)):
            conversation = await reopened(None, chat_id, owner)
            if conversation is None or node is None or node in conversation.branch:
                return gr.skip(), gr.skip(), gr.skip()
            if await backend.replies.find(owner, conversation.id):
                return said("Wait for the reply being written (or Stop it) before switching versions.", 3)
            try:
                stored = await _change(store, owner, conversation, lambda target: target.show(int(node)))
            except (SwitchboardError, ValueError):
                return said("That version is not part of this chat any more.", 3)
        return *(await shown(owner, stored)), kept(owner, stored)

    async def stop_reply(conversation_id: str, request: gr.Request):
        """Stop the reply being written in the open chat (from whichever page, or replica, started it)."""
        running = await backend.replies.find(owner_of(request), conversation_id or "")
        if running is not None:
            running.stop()
        return gr.update(interactive=False)

    async def finish(conversation, request: gr.Request):
        """After a reply was shown to its end (or it stopped): Send is back, unless a message sent meanwhile is
        being answered now (its own step then gives Send back)."""
        if conversation is not None and await backend.replies.find(owner_of(request), conversation.id):
            return busy()
        return idle()

    controls = [send, stop]
    private: dict[str, Any] = {"api_visibility": "private"}
    quiet: dict[str, Any] = {"show_progress": "hidden", **private}
    follow_outputs = [chatbot, versions, current, chats]
    sent = [textbox, chatbot, current, *settings, search, open_id]
    for trigger in (textbox.submit, send.click):
        started = trigger(
            add_message,
            sent,
            [chatbot, versions, taken, send, stop, current, chats, open_id],
            validator=check_message,
            # A message sent while a reply is written is not ignored (Gradio's default for a trigger whose last
            # event still runs): it is sent when that reply ends. No progress overlay meanwhile: the chat keeps
            # showing the reply.
            trigger_mode="multiple",
            show_progress="hidden",
            **private,
        )
        # Our own "waiting" line replaces Gradio's progress dots, which it places oddly after a stopped reply. A
        # message sent while the previous reply is shown starts its own follow step (Gradio would drop a second
        # trigger of a step still running), which takes over from the earlier one.
        started.success(
            follow,
            [chatbot, current, search],
            follow_outputs,
            show_progress="hidden",
            trigger_mode="multiple",
            **private,
        ).then(finish, current, controls, js=FOCUS_JS, trigger_mode="multiple", **quiet)
        started.success(None, [textbox, taken], textbox, js=TAKEN_JS, trigger_mode="multiple", **quiet)
    for trigger, handler in ((chatbot.retry, retry), (chatbot.edit, edit)):
        inputs = [chatbot, current, open_id, *settings]
        outputs = [chatbot, versions, textbox, send, stop, current, chats, open_id]
        started = trigger(handler, inputs, outputs, validator=check_limits, **private)
        started.success(follow, [chatbot, current, search], follow_outputs, show_progress="hidden", **private).then(
            finish, current, controls, js=FOCUS_JS, **quiet
        )
    chatbot.undo(undo, [chatbot, current, open_id, textbox], [chatbot, versions, textbox, current], **private)
    versions.input(pick_version, [versions, current, open_id], [chatbot, versions, current], **quiet)
    # Stop ends the reply on the server; the step showing it then ends by itself and gives Send back.
    stop.click(stop_reply, open_id, stop, queue=False, js=FOCUS_JS, **private)
    # The model line follows the picked model and the open chat (each change of it: a reply's end, another chat).
    model.change(describe_model, [current, model], model_line, queue=False, **private)
    current.change(describe_model, [current, model], model_line, queue=False, **private)
    # The address bar names the open chat (?chat=ID), so a reload or a bookmark comes back to it; back and forward
    # reload the page at the address they move to (see PAGE_JS in app.py).
    open_id.change(None, open_id, None, js=ADDRESS_JS, **private)

    # The sidebar. What the visitor does in the chat list (open, rename, export, delete) arrives as an action in
    # the list's value, through one event of the list per kind (chat_list.ACTIONS).
    async def start_new(query: str, request: gr.Request):
        shows.chat(request, "")
        chat_listing = await listed(request, None, query)
        return *(await shown("", None)), None, chat_listing, None, ""

    async def open_chat(conversation_id: str | None, request: gr.Request):
        """The chat, its model and settings on show. (The list marks it itself: an answer carrying the list could
        bring it back as it was before a rename made a moment earlier.)"""
        if not conversation_id:
            return (gr.skip(),) * 11
        owner = owner_of(request)
        try:
            conversation = await shared.latest(owner, conversation_id)
        except SwitchboardError as error:
            return said(error.user_message(), 11)
        shows.chat(request, conversation.id)
        saved = conversation.settings
        chosen_model = conversation.model if conversation.model in {id_ for _, id_ in choices} else default
        return (
            *(await shown(owner, conversation)),
            kept(owner, conversation),
            chosen_model,
            saved.get("system_prompt", ""),
            saved.get("temperature", 0.7),
            saved.get("top_p", 1.0),
            saved.get("max_tokens", 0),
            saved.get("seed", -1),
            None,
            conversation.id,
        )

    async def open_listed(value, request: gr.Request):
        picked = action(value, "open")
        return await open_chat(picked["id"] if picked else None, request)

    async def find(query: str, conversation_id: str, request: gr.Request):
        shows.search(request, query)
        return await listed(request, conversation_id or None, query)

    async def rename_chat(value, conversation, conversation_id: str, query: str, request: gr.Request):
        """Rename the chat the list's menu names; the open chat's copy too when it is that one."""
        wanted = action(value, "rename")
        if wanted is None:
            return gr.skip(), await listed(request, conversation_id or None, query)
        owner = owner_of(request)
        is_open = conversation is not None and conversation.id == wanted["id"]
        target = await reopened(conversation if is_open else None, wanted["id"], owner)
        if target is None:
            return said("That chat does not exist (or is not yours).", 2)
        try:
            renamed = await _change(store, owner, target, _retitled(wanted["title"]), touch=False)  # keeps its place
        except SwitchboardError as error:
            return said(error.user_message(), 2)
        return kept(owner, renamed) if is_open else gr.skip(), await listed(request, conversation_id or None, query)

    async def delete_chat(value, conversation_id: str, query: str, request: gr.Request):
        """Delete the chat the list's menu names (after its confirmation); the page shows a new chat when it was
        the open one, else stays as it is."""
        doomed = action(value, "delete")
        if doomed is None:
            return (gr.skip(),) * 5
        owner = owner_of(request)
        running = await backend.replies.find(owner, doomed["id"])
        if running is not None:
            running.stop()
            await running.wait()
        try:
            await store.delete(owner, doomed["id"])
        except SwitchboardError as error:
            return said(error.user_message(), 5)
        if doomed["id"] != conversation_id:
            return *(gr.skip(),) * 3, await listed(request, conversation_id or None, query), gr.skip()
        shows.chat(request, "")
        return *(await shown(owner, None)), None, await listed(request, None, query), ""

    async def export_chat(value, request: gr.Request):
        wanted = action(value, "export")
        if wanted is None:
            return gr.skip()
        try:
            conversation = await store.get(owner_of(request), wanted["id"])
        except SwitchboardError as error:
            return said(error.user_message(), 1)
        return await history.export_file(conversation, wanted["format"])

    async def import_chat(path: str, query: str, request: gr.Request):
        owner = owner_of(request)
        try:
            async with limits.admit(visitor_of(request)):  # one import at a time per visitor, counted like a message
                conversation = await history.import_file(backend, owner, path)
        except SwitchboardError as error:
            return said(f"Import failed: {error.user_message()}", 5)
        shows.chat(request, conversation.id)
        return (
            *(await shown(owner, conversation)),
            kept(owner, conversation),
            await listed(request, conversation.id, query),
            conversation.id,
        )

    new_chat_outputs = [chatbot, versions, current, chats, download, open_id]
    new_chat.click(start_new, search, new_chat_outputs, js=SHOW_CHAT_JS, **quiet)
    # The Chatbot's own clear (trash) button empties only the view; the next message would then reach the model
    # with a context the page no longer shows. Clearing starts a new chat instead; the old one stays in the list.
    chatbot.clear(start_new, search, new_chat_outputs, **quiet)
    opened_outputs = [chatbot, versions, current, *settings, download, open_id]
    # A chat opened while its reply is being written shows the reply live (from its start) to its end.
    chats.select(open_listed, chats, opened_outputs, js=SHOW_CHAT_JS, **quiet).then(
        follow_running, [chatbot, current, search], [*follow_outputs, *controls], **quiet
    )
    search.change(find, [search, open_id], chats, **quiet)
    chats.edit(rename_chat, [chats, current, open_id, search], [current, chats], **quiet)
    chats.delete(delete_chat, [chats, open_id, search], [chatbot, versions, current, chats, open_id], **quiet)
    # The export is downloaded at once.
    chats.download(export_chat, chats, download, **quiet).then(None, js=DOWNLOAD_JS, **private)
    imported = [chatbot, versions, current, chats, open_id]
    importer.upload(import_chat, [importer, search], imported, js=SHOW_CHAT_JS, **quiet)

    # Compare: one prompt to several models side by side; the answer picked continues the chat.
    compare_outputs = [*comparing.panes, *comparing.picks, comparing.results]
    per_model = [*comparing.columns, *comparing.panes]
    comparing.models.change(shown_columns, comparing.models, per_model, queue=False, **private)
    compare_buttons = [comparing.run, comparing.stop]

    async def compare(
        model_ids, prompt: str, conversation, conversation_id: str, system_prompt: str, request: gr.Request
    ):
        async for update in compare_answers(
            backend, limits, pacer, reopened, model_ids, prompt, conversation, conversation_id, system_prompt, request
        ):
            yield update

    compare_inputs = [comparing.models, comparing.prompt, current, open_id, system]
    running = comparing.run.click(
        lambda *_: (gr.update(visible=False), gr.update(visible=True)),
        compare_inputs,
        compare_buttons,
        validator=lambda models, prompt, _chat, _id, system_prompt: verdict(
            compare_problem(models, prompt, system_prompt, backend.settings.app.max_message_chars),
            inputs=len(compare_inputs),
        ),
        show_progress="hidden",
        **private,
    )
    compared = running.then(
        compare,
        compare_inputs,
        compare_outputs,
        show_progress="hidden",
        **private,
    )
    back = {"fn": lambda: (gr.update(visible=True), gr.update(visible=False)), "inputs": None}
    compared.then(**back, outputs=compare_buttons, queue=False, **private)
    compared.failure(**back, outputs=compare_buttons, queue=False, **private)
    comparing.stop.click(None, None, None, cancels=[compared], **private)

    def continue_with(number: int) -> Callable[..., Any]:
        async def pick(outcome: Compared | None, conversation, conversation_id: str, query: str, request: gr.Request):
            """Put the compared exchange in the open chat: the picked answer on show, the others versions of it."""
            if outcome is None or number >= len(outcome.answers):
                return said("Compare first, then pick the answer to go on with.", 10)
            owner = owner_of(request)
            conversation = await reopened(conversation, conversation_id, owner)
            if (conversation.id if conversation else None) != outcome.conversation_id:
                return said("Another chat is open now: compare again in this one.", 10)
            picked = outcome.answers[number]

            def exchange(target: Conversation) -> None:
                question = target.add(StoredMessage(role="user", text=outcome.question), after="leaf")
                for other, answer in enumerate(outcome.answers):
                    if other != number:
                        target.add(answer.model_copy(), after=question)
                target.add(picked.model_copy(), after=question)  # added last: the version on show
                target.model = target.model or f"{picked.provider}/{picked.model}"

            try:
                stored = await _change(store, owner, conversation or Conversation(), exchange)
            except SwitchboardError as error:
                return said(error.user_message(), 10)
            shows.chat(request, stored.id)
            done = [gr.update(interactive=False)] * MAX_COMPARED
            chat_listing = await listed(request, stored.id, query)
            return *(await shown(owner, stored)), kept(owner, stored), stored.id, chat_listing, *done, None

        return pick

    for number, button in enumerate(comparing.picks):
        button.click(
            continue_with(number),
            [comparing.results, current, open_id, search],
            [chatbot, versions, current, open_id, chats, *comparing.picks, comparing.results],
            js=FOCUS_JS,
            **quiet,
        )

    wire_presets(store, page, presets, system, max_chars=backend.settings.app.max_message_chars)

    async def load_page(offset_minutes: float | None, request: gr.Request):
        """A page opened: the owner's chats (grouped by date in the page's time zone), and the chat its address
        names (?chat=ID; only the owner's: anyone else's or no such chat is said so and nothing opens)."""
        shows.zone(request, offset_minutes)
        wanted = request.query_params.get("chat", "") if request is not None else ""
        opened = await open_chat(wanted, request) if wanted else (gr.skip(),) * 11
        shown_id = wanted if isinstance(opened[2], ShownChat) else None
        return *opened, await listed(request, shown_id)

    page.load(load_page, zone, [*opened_outputs, chats], js=ZONE_JS, **quiet).then(
        follow_running, [chatbot, current, search], [*follow_outputs, *controls], **quiet
    )

    async def chat(message: str, model: str = default, request: gr.Request | None = None) -> AsyncIterator[str]:
        """Send one message (no history) to `model` (provider/model or a route; default: the configured default)
        and stream the reply text; each update is the whole text so far."""
        if problem := _text_problem(backend, message):
            raise refusal(problem)
        chat_request = ChatRequest(model=model or default, messages=[{"role": "user", "content": message}])
        text = ""
        try:
            async with limits.admit(visitor_of(request)):
                async for batch in batched(backend.chat.stream(chat_request), pacer):
                    text += "".join(event.text for event in batch if isinstance(event, TextDelta))
                    yield text
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None

    gr.api(chat, api_name="chat", concurrency_limit=backend.settings.app.concurrency)
    return sidebar


class _Turns:
    """One at a time per key: an asyncio.Lock for each key in use, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Showing:
    """Which chat each page (Gradio session) shows, so a page following a reply stops when it opens another chat
    (the reply goes on; only that page's view of it ends), and what its search box holds, so the list a reply's
    end refreshes matches the box as it is then. The newest SESSIONS pages are remembered."""

    SESSIONS = 10_000

    def __init__(self) -> None:
        self._chats: OrderedDict[str, str] = OrderedDict()
        self._queries: dict[str, str] = {}
        self._zones: dict[str, int] = {}

    def chat(self, request: gr.Request | None, conversation_id: str) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            self._chats[session] = conversation_id
            self._chats.move_to_end(session)
            while len(self._chats) > self.SESSIONS:
                self._chats.popitem(last=False)

    def search(self, request: gr.Request | None, query: str) -> None:
        session = getattr(request, "session_hash", None)
        if session:
            self._queries[session] = query or ""
            while len(self._queries) > self.SESSIONS:
                self._queries.pop(next(iter(self._queries)))

    def zone(self, request: gr.Request | None, offset_minutes: float | None) -> None:
        """The page's time zone (JavaScript's getTimezoneOffset: minutes behind UTC), as it said when it loaded."""
        session = getattr(request, "session_hash", None)
        if session and isinstance(offset_minutes, int | float) and abs(offset_minutes) <= 24 * 60:
            self._zones[session] = int(offset_minutes)
            while len(self._zones) > self.SESSIONS:
                self._zones.pop(next(iter(self._zones)))

    def offset(self, request: gr.Request | None) -> int:
        return self._zones.get(getattr(request, "session_hash", None) or "", 0)

    def query(self, request: gr.Request | None, default: str) -> str:
        """What the page's search box holds now (as its last search said), else `default`."""
        return self._queries.get(getattr(request, "session_hash", None) or "", default)

    def still(self, request: gr.Request | None, conversation_id: str) -> bool:
        """Whether the page still shows that chat (a page not seen yet shows what it asked to follow)."""
        session = getattr(request, "session_hash", None)
        return self._chats.get(session or "", conversation_id) == conversation_id


def _retitled(title: str) -> Callable[[Conversation], None]:
    def retitle(conversation: Conversation) -> None:
        conversation.title = title

    return retitle


async def _change(
    store: ConversationStore,
    owner: str,
    conversation: Conversation,
    change: Callable[[Conversation], object],
    *,
    touch: bool = True,
) -> Conversation:
    """Make this page's `change` to the conversation and store it (`touch`: dated now, first in the list). When
    another tab (or page, or process) changed the stored conversation since this page read it, nothing of either
    is lost: the change is made again to what is stored now, and that is what the page shows from then on
    (returned, a new object). Changes name messages by their node numbers, which never change (messages are only
    ever added), so they mean the same there."""
    changed = conversation.fork()  # what pages show stays as it was (and as it is if this fails)
    change(changed)
    try:
        await store.save(owner, changed, touch=touch)
        return changed
    except StaleConversationError:
        try:
            fresh = await store.get(owner, conversation.id)
        except SwitchboardError:
            raise ConversationError("This chat was deleted in another tab or window; start a new one.") from None
        change(fresh)
        await store.save(owner, fresh, touch=touch)
        gr.Info("This chat was changed in another tab meanwhile; it now shows both changes.")
        return fresh


def _model_line(backend: Backend) -> Callable[..., Awaitable[str]]:
    """The model line's HTML for the open conversation (as the page shows it) and the picked model."""

    async def describe_model(on_show: ShownChat | None, model_id: str | None, request: gr.Request) -> str:
        conversation = await backend.shared.view(owner_of(request), on_show) if on_show is not None else None
        size = len(conversation.nodes) if conversation is not None else 0
        return _model_html(backend, model_id, await sized(size, model_info.context_used, conversation))

    return describe_model


def _model_html(backend: Backend, model_id: str | None, used: tuple[int, bool] = (0, False)) -> str:
    """The model line's HTML: what the model can do, and `used` (tokens of context the chat takes, estimated?)."""
    try:
        info = backend.models.info(model_id or "")
    except SwitchboardError:
        return ""
    return model_info.describe(info, *used)


async def _limit_problem(limits: VisitorLimits, request: gr.Request | None) -> str | None:
    try:
        await limits.check(visitor_of(request))
    except TooManyRequestsError as error:
        return error.user_message()
    return None


async def _message_problem(
    backend: Backend, limits: VisitorLimits, message: dict | None, model_id: str, request: gr.Request | None
) -> str | None:
    """Why a message cannot be sent as it is, in one sentence; None when it can."""
    text = ((message or {}).get("text") or "").strip()
    pictures, attached = _attachments(message)
    if not text and not pictures and not attached:
        return "Type a message first."
    problem = _text_problem(backend, text) or await _limit_problem(limits, request)
    if problem or not (pictures or attached):
        return problem
    limit = backend.settings.app.max_upload_bytes
    try:
        info = backend.models.info(model_id)
        # Documents by their content (a PDF must parse, text must be UTF-8), off the event loop; read once: the
        # step that saves the message gets this result back.
        documents = [await _read(backend, path, name, request) for path, name in attached]
        check_fits(documents, model_id, info.context_length, text)
    except SwitchboardError as error:
        return error.user_message()
    for path in pictures:
        try:
            # By content, not by name; off the event loop. Decoded once: the backend remembers what it prepared, so
            # the step that saves the message gets this result back.
            await validate_image(path, max_bytes=limit)
        except InvalidImageError as error:
            return f"{Path(path).name}: {error.user_message()}"
    if pictures and not info.vision:
        return f"{model_id} does not read images; pick a vision model, or send the text alone."
    return None


async def _read(backend: Backend, path: str, name: str, request: gr.Request | None) -> Document:
    """An attached document, read for the visitor (their reading counted: backend/documents.py)."""
    return await backend.documents.read(path, name=name, visitor=visitor_of(request))


def _text_problem(backend: Backend, text: str, what: str = "message") -> str | None:
    return too_long(text, backend.settings.app.max_message_chars, what)


async def _count(limits: VisitorLimits, request: gr.Request | None) -> None:
    """Count a request that starts a reply (retry, edit) against the visitor's limits, or refuse it."""
    try:
        await limits.count(visitor_of(request))
    except TooManyRequestsError as error:
        raise refusal(error.user_message()) from None


def _file_path(file: Any) -> str:
    return file.get("path", "") if isinstance(file, dict) else str(file)


def _attachments(message: dict | None) -> tuple[list[str], list[tuple[str, str]]]:
    """A message's attached files: the pictures' paths, and the documents' (path, name as attached)."""
    pictures, documents = [], []
    for file in (message or {}).get("files") or []:
        path = _file_path(file)
        name = (file.get("orig_name") if isinstance(file, dict) else None) or Path(path).name
        if is_document(name):
            documents.append((path, name))
        else:
            pictures.append(path)
    return pictures, documents
