"""The Chat tab's handlers: one method of `ChatHandlers` per event (wiring.py says which). Each takes the values it
reads by name (the events' `inputs_kwargs`; a `gr.Request`, and a Chatbot event's data, first) and returns or
yields a dict keyed by the page's components (`Updates`): only what it changes. One that changes nothing returns
`gr.skip()`, or `said(...)`: a toast saying why. A validator returns `verdict(...)`: a problem shown at an input.

Replies are generated on the server (`backend.replies`), not by the handlers: a handler that sends a message
saves it with its reply (streaming) and starts the reply; `follow` shows it as it is written, in whichever page
shows that chat, and the page may close meanwhile: the reply goes on and is stored.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import gradio as gr

from backend import (
    PRESET_TEXT_LIMIT,
    Backend,
    ChatRequest,
    Conversation,
    Document,
    Image,
    Preset,
    ShownChat,
    StoredMessage,
    SwitchboardError,
    TextDelta,
    TooManyRequestsError,
    VisitorLimits,
    model_messages,
    validate_image,
)

from ..identity import owner_of, visitor_of
from ..refusals import refusal, said, say, verdict
from ..streaming import Pacer, batched, paced
from . import checks, history
from .chat_list import action
from .compare import Compared, compare_answers, compare_problem
from .page import ChatPage, Updates
from .pages import Pages, Turns
from .reply import ReplyView, message_text
from .settings import Chosen
from .view import ChatView, retitled

# The handlers' type for the page's values: what Gradio gives (anything the page or a forged request sends).
Value = Any


class ChatHandlers:
    """Every handler of the Chat tab, over the app's `backend`, the per-visitor `limits`, the app's one `pacer`
    of streamed updates, and the tab's components (`page`)."""

    def __init__(self, backend: Backend, limits: VisitorLimits, pacer: Pacer, page: ChatPage) -> None:
        self.backend = backend
        self.limits = limits
        self.pacer = pacer
        self.page = page
        self.store = backend.conversations
        self.default = backend.models.default_chat
        self.models = [choice.id for choice in backend.models.chat_choices()]
        self.max_chars = backend.settings.app.max_message_chars
        self.pages = Pages()
        self.picking = Turns()
        self.view = ChatView(backend, self.pages, page)

    # --- a message and its reply ------------------------------------------------------------------------------

    async def check_message(self, request: gr.Request, *, message: Value, **values: Value) -> Updates:
        """Refusals before anything is saved or sent, said at the message box, where the text and attachments
        stay. Gradio runs it when the event joins its queue, with the event's inputs (those of `add_message`).
        (The reply checks limits, images and capabilities again on its way.)"""
        chosen = Chosen.of_page(values)
        problem = checks.system_prompt_problem(chosen.system_prompt, self.max_chars)
        model_id = chosen.model or self.default
        visitor = visitor_of(request)
        problem = problem or await checks.message_problem(self.backend, self.limits, message, model_id, visitor)
        return verdict(problem, at=self.page.message)

    async def add_message(
        self,
        request: gr.Request,
        *,
        message: Value,
        chat_history: Value,  # (sent by the page; what is stored is what counts)
        conversation: ShownChat | None,
        query: Value,
        conversation_id: Value,
        **settings: Value,
    ) -> Updates:
        """Save the message (checked by `check_message` first) and start its reply; show it. The message counts
        against the visitor's limits here, where it is saved: refused, nothing is kept."""
        text = checks.sent_text(message)
        chosen = Chosen.of_page(settings)
        problem = checks.text_problem(text, self.max_chars)
        if problem := problem or checks.system_prompt_problem(chosen.system_prompt, self.max_chars):
            raise refusal(problem)
        images, documents = await self._attached(message, request)
        owner = owner_of(request)
        opened = await self._after_reply(owner, await self.view.reopened(conversation, conversation_id, owner))
        question = await history.store_user_message(self.backend, owner, text, images, documents)
        after = opened.leaf if opened is not None else None
        stored = await self._reply_to(
            request, opened, lambda target: target.add(question.model_copy(), after=after), chosen
        )
        chat_listing = await self.view.listed(request, stored.id, query)
        shown = await self.view.shown(owner, stored, live=True)
        self.pages.chat(request, stored.id)
        page = self.page
        return {
            **shown,
            page.taken: json.dumps({"text": text, "files": checks.file_paths(message)}),
            **self._busy(),
            page.current: self.view.kept(owner, stored),
            page.chats: chat_listing,
            page.open_id: stored.id,
        }

    async def _attached(self, message: Value, request: gr.Request) -> tuple[list[Image], list[Document]]:
        """The message's pictures and documents, read (each was read once already, by the validator: this gets
        that result back), and the message counted against the visitor's limits; or a refusal."""
        pictures, attached = checks.attachments(message)
        visitor = visitor_of(request)
        try:
            limit = self.backend.settings.app.max_upload_bytes
            images = [await validate_image(path, max_bytes=limit) for path in pictures]
            documents = [await checks.read_document(self.backend, path, name, visitor) for path, name in attached]
            await self.limits.count(visitor)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        return images, documents

    async def _after_reply(self, owner: str, conversation: Conversation | None) -> Conversation | None:
        """The chat to add a message to: once the reply being written in it (if any) has ended. Sent while a reply
        is written, a message waits for it (the text stays in the box meanwhile, and what is typed after it stays
        once it is sent: TAKEN_JS), then follows it in the chat."""
        running = await self.backend.replies.find(owner, conversation.id) if conversation is not None else None
        if running is None:
            return conversation
        gr.Info("Your message is sent when the reply being written ends.", duration=4)
        await running.wait()
        return await self.view.reopened(None, running.conversation_id, owner)

    async def _reply_to(
        self,
        request: gr.Request,
        conversation: Conversation | None,
        change: Callable[[Conversation], object],
        chosen: Chosen,
    ) -> Conversation:
        """Make `change` (it adds or picks the question to answer) to the open conversation, add the reply to it,
        save, and start generating the reply on the server. When another tab changed the chat meanwhile, the
        change is made to what is stored now (nothing of either is lost). The visitor's slot is taken before
        anything is saved: a refusal keeps nothing."""
        owner = owner_of(request)
        if problem := checks.system_prompt_problem(chosen.system_prompt, self.max_chars):
            raise refusal(problem)
        if conversation is not None and await self.backend.replies.find(owner, conversation.id):
            raise refusal("A reply is still being written in this chat: wait for it, or Stop it.")

        def answered(target: Conversation) -> None:
            change(target)
            target.add(StoredMessage(role="assistant", status="streaming", model=chosen.model or self.default))
            target.model = chosen.model
            target.settings = chosen.stored()

        async with contextlib.AsyncExitStack() as held:
            try:
                await held.enter_async_context(self.limits.hold(visitor_of(request)))
            except TooManyRequestsError as error:
                raise refusal(error.user_message()) from None
            try:
                stored = await self.view.change(owner, conversation or Conversation(), answered)
            except SwitchboardError as error:
                raise refusal(error.user_message()) from None
            await self._start(owner, stored, chosen, held)
        return stored

    async def _start(self, owner: str, stored: Conversation, chosen: Chosen, held: contextlib.AsyncExitStack) -> None:
        """Start generating the reply at the end of `stored`; the visitor's slot (`held`) goes with it, given back
        when it ends. A reply that cannot start is stored as failed, with the reason."""
        try:
            messages = await model_messages(self.store, owner, stored, chosen.system_prompt)
            slot = contextlib.AsyncExitStack()
            self.backend.replies.start(
                owner, stored, chosen.request(messages, self.default), release=lambda: slot.aclose()
            )
            # Started: the slot goes with the reply. (Its task runs only once this handler awaits again, so it
            # cannot end before this line.)
            slot = held.pop_all()
        except SwitchboardError as error:
            assert stored.leaf is not None
            failed = StoredMessage(role="assistant", status="failed", error=error.user_message(), model=chosen.model)
            await self.store.finish_reply(owner, stored.id, stored.leaf, failed)

    async def follow(
        self, request: gr.Request, *, chat_history: Value, conversation: ShownChat | None, query: Value
    ) -> AsyncIterator[Updates]:
        """Show the reply being generated in the open chat, from its first event, live to its end; then the chat
        as stored. Closing the page (or this step being cancelled) stops only the showing, not the reply."""
        async for update in self._followed(request, chat_history, conversation, query):
            yield update or gr.skip()

    async def _followed(
        self, request: gr.Request, chat_history: Value, conversation: ShownChat | None, query: Value
    ) -> AsyncIterator[Updates]:
        """`follow`'s updates, each of them empty when the page's view is to be left alone."""
        owner = owner_of(request)
        if conversation is None:
            yield {}
            return
        running = await self.backend.replies.find(owner, conversation.id)
        if running is None:  # it ended already (a quick refusal upstream): show it as stored
            stored = await self._as_stored(request, conversation.id, query)
            if stored[self.page.current] is None:  # (no such chat any more: the page keeps what it had)
                del stored[self.page.current]
            yield stored
            return
        view = ReplyView(running.requested)
        yield {self.page.chatbot: chat_history + view.messages()}  # a "waiting" line at once
        async for batch in paced(running, self.pacer, shown=len(chat_history)):
            if not self.pages.still(request, running.conversation_id):
                # The page opened another chat meanwhile, which is on show now. (A step's last output is applied
                # again when it ends: it must not be this chat's view.)
                yield {}
                return
            for event in batch:
                view.apply(event)
            yield {self.page.chatbot: chat_history + view.messages()}
        await running.wait()
        if not self.pages.still(request, running.conversation_id) or await self.backend.replies.find(
            owner, running.conversation_id
        ):
            # Another chat is on show, or a newer reply in this one (a message sent meanwhile) is being written:
            # its own step shows it, and this one's last output must not draw over it.
            yield {}
            return
        yield await self._as_stored(request, running.conversation_id, query)

    async def _as_stored(self, request: gr.Request, conversation_id: str, query: Value) -> Updates:
        """The chat as stored now, and the list as the page's search box holds it now (it may have changed while
        the reply was written)."""
        owner = owner_of(request)
        fresh = await self.view.reopened(None, conversation_id, owner)
        chat_listing = await self.view.listed(request, conversation_id, self.pages.query(request, query))
        shown = await self.view.shown(owner, fresh)
        return {**shown, self.page.current: self.view.kept(owner, fresh), self.page.chats: chat_listing}

    async def follow_running(
        self, request: gr.Request, *, chat_history: Value, conversation: ShownChat | None, query: Value
    ) -> AsyncIterator[Updates]:
        """`follow`, for a chat opened or reloaded while its reply is written: Stop instead of Send meanwhile."""
        owner = owner_of(request)
        if conversation is None or await self.backend.replies.find(owner, conversation.id) is None:
            yield self._idle()
            return
        last: Updates = {}
        async for update in self._followed(request, chat_history, conversation, query):
            yield {**update, **self._busy()}
            last = update
        if not self.pages.still(request, conversation.id):  # another chat is on show: leave its view alone
            last = {}
        yield {**last, **self._idle()}  # the chat as stored once more: the step's result holds the whole of it

    def _busy(self) -> Updates:
        """While a reply is written: Stop instead of Send. (The message box stays open for the next message: sent
        meanwhile, it is sent when the reply ends. It is no output of the steps that follow a reply, or Gradio
        would hold it as pending and show nothing.)"""
        return {self.page.send: gr.update(visible=False), self.page.stop: gr.update(visible=True, interactive=True)}

    def _idle(self) -> Updates:
        return {self.page.send: gr.update(visible=True), self.page.stop: gr.update(visible=False, interactive=True)}

    async def finish(self, request: gr.Request, *, conversation: ShownChat | None) -> Updates:
        """After a reply was shown to its end (or it stopped): Send is back, unless a message sent meanwhile is
        being answered now (its own step then gives Send back)."""
        if conversation is not None and await self.backend.replies.find(owner_of(request), conversation.id):
            return self._busy()
        return self._idle()

    async def stop_reply(self, request: gr.Request, *, conversation_id: Value) -> Updates:
        """Stop the reply being written in the open chat (from whichever page, or replica, started it)."""
        running = await self.backend.replies.find(owner_of(request), conversation_id or "")
        if running is not None:
            running.stop()
        return {self.page.stop: gr.update(interactive=False)}

    # --- the chat's turns: retry, edit, undo, versions ----------------------------------------------------------

    async def check_limits(self, request: gr.Request, **values: Value) -> Updates:
        """Retry's and Edit's validator: the visitor's limits, said at the chat."""
        return verdict(await checks.limit_problem(self.limits, visitor_of(request)), at=self.page.chatbot)

    async def retry(
        self,
        request: gr.Request,
        data: gr.RetryData,
        *,
        chat_history: Value,
        conversation: ShownChat | None,
        conversation_id: Value,
        **settings: Value,
    ) -> Updates:
        """Regenerate an answer: a new version of it, after the same question; the old one stays a version."""

        def after_the_question(conversation: Conversation) -> Callable[[Conversation], object]:
            question = history.user_node(conversation, chat_history, data.index)
            return lambda target: target.cut_after(question)

        chosen = Chosen.of_page(settings)
        return await self._answer_again(request, conversation, conversation_id, chosen, after_the_question)

    async def edit(
        self,
        request: gr.Request,
        data: gr.EditData,
        *,
        chat_history: Value,
        conversation: ShownChat | None,
        conversation_id: Value,
        **settings: Value,
    ) -> Updates:
        """Edit a question: the edited one is a new version of it (what followed the old one stays with it)."""
        text = message_text(data.value).strip()
        if problem := checks.edit_problem(text, self.max_chars):
            # Said in a toast; the chat shows what it showed before the edit (an error would cover every output).
            gr.Warning(problem)
            owner = owner_of(request)
            before = await self.view.reopened(conversation, conversation_id, owner)
            return {**await self.view.shown(owner, before), **self._idle()}

        def edited_question(conversation: Conversation) -> Callable[[Conversation], object]:
            old = conversation.nodes[history.user_node(conversation, chat_history, data.index)]
            edited = StoredMessage(role="user", text=text, images=old.images)
            return lambda target: target.add(edited.model_copy(), after=old.parent)

        chosen = Chosen.of_page(settings)
        return await self._answer_again(request, conversation, conversation_id, chosen, edited_question)

    async def _answer_again(
        self,
        request: gr.Request,
        conversation: ShownChat | None,
        conversation_id: Value,
        chosen: Chosen,
        question: Callable[[Conversation], Callable[[Conversation], object]],
    ) -> Updates:
        """Retry and Edit: `question(conversation)` is the change that ends the branch with the question to
        answer; then a new reply to it, as for a sent message."""
        try:
            await self.limits.count(visitor_of(request))
        except TooManyRequestsError as error:
            raise refusal(error.user_message()) from None
        owner = owner_of(request)
        opened = await self.view.reopened(conversation, conversation_id, owner)
        if opened is None:
            raise refusal("Open a chat first.")
        try:
            change = question(opened)
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
        stored = await self._reply_to(request, opened, change, chosen)
        shown = await self.view.shown(owner, stored, live=True)
        self.pages.chat(request, stored.id)
        return {**shown, **self._busy(), self.page.current: self.view.kept(owner, stored)}

    async def undo(
        self,
        request: gr.Request,
        data: gr.UndoData,
        *,
        chat_history: Value,
        conversation: ShownChat | None,
        conversation_id: Value,
        draft: Value,
    ) -> Updates:
        """Take the last exchange off the visible branch (it stays a version) and put its question back in the
        message box, before what was typed there (which stays)."""
        owner = owner_of(request)
        opened = await self.view.reopened(conversation, conversation_id, owner)
        if opened is None or await self.backend.replies.find(owner, opened.id):
            return said("Nothing to undo while a reply is being written.")
        try:
            question = opened.nodes[history.user_node(opened, chat_history, data.index)]
            stored = await self.view.change(owner, opened, lambda target: target.cut_after(question.parent))
        except SwitchboardError as error:
            return said(error.user_message())
        files = history.viewable_images(self.backend, owner, question.images)
        typed = ((draft or {}).get("text") or "").strip()  # (Gradio has checked the box's value)
        text = f"{question.text}\n\n{typed}" if typed else question.text
        box = {"text": text, "files": [*files, *((draft or {}).get("files") or [])]}
        shown = await self.view.shown(owner, stored)
        return {**shown, self.page.message: box, self.page.current: self.view.kept(owner, stored)}

    async def pick_version(
        self, request: gr.Request, *, node: Value, conversation: ShownChat | None, conversation_id: Value
    ) -> Updates:
        """Show another version of a turn (and what followed it)."""
        owner = owner_of(request)
        chat_id = conversation_id or getattr(conversation, "id", None) or ""
        # One pick can arrive twice at once (the picker sends its value again as it closes): one at a time per
        # chat, each reading the chat as stored, so the second finds the first made and changes nothing.
        async with self.picking.hold((owner, chat_id)):
            opened = await self.view.reopened(None, chat_id, owner)
            if opened is None or node is None or node in opened.branch:
                return gr.skip()
            if await self.backend.replies.find(owner, opened.id):
                return said("Wait for the reply being written (or Stop it) before switching versions.")
            try:
                stored = await self.view.change(owner, opened, lambda target: target.show(int(node)))
            except (SwitchboardError, ValueError):
                return said("That version is not part of this chat any more.")
        return {**await self.view.shown(owner, stored), self.page.current: self.view.kept(owner, stored)}

    async def describe_model(self, request: gr.Request, *, conversation: ShownChat | None, model: Value) -> Updates:
        """The model line, for the picked model and the open chat."""
        return {self.page.model_line: await self.view.model_line(owner_of(request), conversation, model)}

    # --- the sidebar: new, open, search, rename, delete, export, import -----------------------------------------

    async def start_new(self, request: gr.Request, *, query: Value) -> Updates:
        self.pages.chat(request, "")
        chat_listing = await self.view.listed(request, None, query)
        page = self.page
        shown = await self.view.shown("", None)
        return {**shown, page.current: None, page.chats: chat_listing, page.download: None, page.open_id: ""}

    async def open_listed(self, request: gr.Request, *, value: Value) -> Updates:
        """Open the chat picked in the list."""
        picked = action(value, "open")
        return await self._opened(request, picked["id"] if picked else None) or gr.skip()

    async def _opened(self, request: gr.Request, conversation_id: str | None) -> Updates | None:
        """The chat, its model and settings on show; None when there is none to open (said so when it is not
        the owner's, or not at all). (The list marks it itself: an answer carrying the list could bring it back
        as it was before a rename made a moment earlier.)"""
        if not conversation_id:
            return None
        owner = owner_of(request)
        try:
            conversation = await self.backend.open_chats.latest(owner, conversation_id)
        except SwitchboardError as error:
            say(error.user_message())
            return None
        self.pages.chat(request, conversation.id)
        shown = await self.view.shown(owner, conversation)
        chosen = Chosen.of_conversation(conversation, self.models, self.default)
        return {
            **shown,
            self.page.current: self.view.kept(owner, conversation),
            **self.page.settings.showing(chosen),
            self.page.download: None,
            self.page.open_id: conversation.id,
        }

    async def load_page(self, request: gr.Request, *, offset_minutes: Value) -> Updates:
        """A page opened: the owner's chats (grouped by date in the page's time zone), and the chat its address
        names (?chat=ID; only the owner's: anyone else's or no such chat is said so and nothing opens)."""
        self.pages.zone(request, offset_minutes)
        wanted = request.query_params.get("chat", "") if request is not None else ""
        opened = await self._opened(request, wanted) if wanted else None
        chat_listing = await self.view.listed(request, wanted if opened is not None else None)
        return {**(opened or {}), self.page.chats: chat_listing}

    async def find(self, request: gr.Request, *, query: Value, conversation_id: Value) -> Updates:
        """The chats the search box finds."""
        self.pages.search(request, query)
        return {self.page.chats: await self.view.listed(request, conversation_id or None, query)}

    async def rename_chat(
        self, request: gr.Request, *, value: Value, conversation: ShownChat | None, conversation_id: Value, query: Value
    ) -> Updates:
        """Rename the chat the list's menu names; the open chat's copy too when it is that one."""
        wanted = action(value, "rename")
        if wanted is None:
            return {self.page.chats: await self.view.listed(request, conversation_id or None, query)}
        owner = owner_of(request)
        is_open = conversation is not None and conversation.id == wanted["id"]
        target = await self.view.reopened(conversation if is_open else None, wanted["id"], owner)
        if target is None:
            return said("That chat does not exist (or is not yours).")
        try:  # (not dated now: it keeps its place in the list)
            renamed = await self.view.change(owner, target, retitled(wanted["title"]), touch=False)
        except SwitchboardError as error:
            return said(error.user_message())
        updates: Updates = {self.page.current: self.view.kept(owner, renamed)} if is_open else {}
        return {**updates, self.page.chats: await self.view.listed(request, conversation_id or None, query)}

    async def delete_chat(self, request: gr.Request, *, value: Value, conversation_id: Value, query: Value) -> Updates:
        """Delete the chat the list's menu names (after its confirmation); the page shows a new chat when it was
        the open one, else stays as it is."""
        doomed = action(value, "delete")
        if doomed is None:
            return gr.skip()
        owner = owner_of(request)
        running = await self.backend.replies.find(owner, doomed["id"])
        if running is not None:
            running.stop()
            await running.wait()
        try:
            await self.store.delete(owner, doomed["id"])
        except SwitchboardError as error:
            return said(error.user_message())
        if doomed["id"] != conversation_id:
            return {self.page.chats: await self.view.listed(request, conversation_id or None, query)}
        self.pages.chat(request, "")
        page = self.page
        shown = await self.view.shown(owner, None)
        return {**shown, page.current: None, page.chats: await self.view.listed(request, None, query), page.open_id: ""}

    async def export_chat(self, request: gr.Request, *, value: Value) -> Updates:
        """The chat the list's menu names, as a file the page downloads at once (DOWNLOAD_JS)."""
        wanted = action(value, "export")
        if wanted is None:
            return gr.skip()
        try:
            conversation = await self.store.get(owner_of(request), wanted["id"])
        except SwitchboardError as error:
            return said(error.user_message())
        return {self.page.download: await history.export_file(conversation, wanted["format"])}

    async def import_chat(self, request: gr.Request, *, path: Value, query: Value) -> Updates:
        """Store an exported chat (JSON) as a new one of the owner's, and open it."""
        owner = owner_of(request)
        try:  # one import at a time per visitor, counted like a message
            async with self.limits.admit(visitor_of(request)):
                conversation = await history.import_file(self.backend, owner, path)
        except SwitchboardError as error:
            return said(f"Import failed: {error.user_message()}")
        self.pages.chat(request, conversation.id)
        page = self.page
        shown = await self.view.shown(owner, conversation)
        return {
            **shown,
            page.current: self.view.kept(owner, conversation),
            page.chats: await self.view.listed(request, conversation.id, query),
            page.open_id: conversation.id,
        }

    # --- Compare ------------------------------------------------------------------------------------------------

    def check_compare(self, *, model_ids: Value, prompt: Value, system_prompt: Value, **values: Value) -> Updates:
        """Compare's validator: two or three models and a prompt, neither it nor the system prompt too long."""
        problem = compare_problem(model_ids, prompt, system_prompt, self.max_chars)
        return verdict(problem, at=self.page.compare.models)

    def start_compare(self, **values: Value) -> Updates:
        """Compare's first step (after its validator): Stop in its place while the answers stream."""
        return self.page.compare.running(True)

    def end_compare(self) -> Updates:
        return self.page.compare.running(False)

    def show_columns(self, *, model_ids: Value) -> Updates:
        return self.page.compare.showing(model_ids)

    async def compare(
        self,
        request: gr.Request,
        *,
        model_ids: Value,
        prompt: Value,
        conversation: ShownChat | None,
        conversation_id: Value,
        system_prompt: Value,
    ) -> AsyncIterator[Updates]:
        """Every picked model's answer to the prompt, side by side, as they stream."""
        async for update in compare_answers(
            self.backend,
            self.limits,
            self.pacer,
            self.page.compare,
            self.view.reopened,
            model_ids,
            prompt,
            conversation,
            conversation_id,
            system_prompt,
            request,
        ):
            yield update

    def continue_with(self, number: int) -> Callable[..., Awaitable[Updates]]:
        """The handler of answer `number`'s "Continue with this"."""

        async def pick(
            request: gr.Request,
            *,
            outcome: Compared | None,
            conversation: ShownChat | None,
            conversation_id: Value,
            query: Value,
        ) -> Updates:
            return await self._continue_with(request, number, outcome, conversation, conversation_id, query)

        return pick

    async def _continue_with(
        self,
        request: gr.Request,
        number: int,
        outcome: Compared | None,
        conversation: ShownChat | None,
        conversation_id: Value,
        query: Value,
    ) -> Updates:
        """Put the compared exchange in the open chat: the picked answer on show, the others versions of it."""
        if outcome is None or number >= len(outcome.answers):
            return said("Compare first, then pick the answer to go on with.")
        owner = owner_of(request)
        opened = await self.view.reopened(conversation, conversation_id, owner)
        if (opened.id if opened else None) != outcome.conversation_id:
            return said("Another chat is open now: compare again in this one.")
        try:
            stored = await self.view.change(owner, opened or Conversation(), outcome.exchange(number))
        except SwitchboardError as error:
            return said(error.user_message())
        self.pages.chat(request, stored.id)
        chat_listing = await self.view.listed(request, stored.id, query)
        page = self.page
        shown = await self.view.shown(owner, stored)
        kept = self.view.kept(owner, stored)
        return {**shown, page.current: kept, page.open_id: stored.id, page.chats: chat_listing, **page.compare.picked()}

    # --- presets ------------------------------------------------------------------------------------------------

    async def list_presets(self, request: gr.Request) -> Updates:
        return await self._presets(request)

    async def _presets(self, request: gr.Request, selected: str | None = None) -> Updates:
        """The owner's presets in the picker, `selected` picked."""
        names = [found.name for found in await self.backend.presets.list(owner_of(request))]
        return {self.page.presets.picker: gr.update(choices=names, value=selected if selected in names else None)}

    async def use_preset(self, request: gr.Request, *, name: Value) -> Updates:
        """The preset picked fills the system prompt."""
        chosen = [found for found in await self.backend.presets.list(owner_of(request)) if found.name == name]
        return {self.page.settings.system_prompt: chosen[0].text} if chosen else gr.skip()

    async def save_preset(self, request: gr.Request, *, name: Value, text: Value) -> Updates:
        """Save the system prompt as a preset under `name`. A preset is a system prompt: no longer than one may
        be (app.max_message_chars), nor than a preset is kept (PRESET_TEXT_LIMIT)."""
        if problem := checks.system_prompt_problem(text, min(self.max_chars, PRESET_TEXT_LIMIT)):
            return said(problem)
        try:
            kept = Preset(name=name or "", text=text or "")
        except ValueError:
            return said("Type a system prompt and a name for it (up to 80 characters) first.")
        try:
            await self.backend.presets.save(owner_of(request), kept)
        except SwitchboardError as error:
            return said(error.user_message())
        gr.Info(f"Saved the preset “{html.escape(kept.name)}”.")
        return {**await self._presets(request, kept.name), self.page.presets.name: ""}

    async def delete_preset(self, request: gr.Request, *, name: Value) -> Updates:
        if not name or not isinstance(name, str):
            return said("Pick the preset to delete first.")
        try:
            await self.backend.presets.delete(owner_of(request), name)
        except SwitchboardError as error:
            return said(error.user_message())
        gr.Info(f"Deleted the preset “{html.escape(name)}”.")
        return await self._presets(request)

    # --- the `chat` API endpoint --------------------------------------------------------------------------------

    def chat_endpoint(self) -> Callable[..., AsyncIterator[str]]:
        """The `chat(message, model)` endpoint, its model defaulting to the configured default (as its API docs
        show)."""
        default = self.default

        async def chat(message: str, model: str = default, request: gr.Request | None = None) -> AsyncIterator[str]:
            """Send one message (no history) to `model` (provider/model or a route; default: the configured default)
            and stream the reply text; each update is the whole text so far."""
            async for text in self._chat(message, model or default, request):
                yield text

        return chat

    async def _chat(self, message: str, model: str, request: gr.Request | None) -> AsyncIterator[str]:
        if problem := checks.text_problem(message, self.max_chars):
            raise refusal(problem)
        chat_request = ChatRequest(model=model, messages=[{"role": "user", "content": message}])
        text = ""
        try:
            async with self.limits.admit(visitor_of(request)):
                async for batch in batched(self.backend.chat.stream(chat_request), self.pacer):
                    text += "".join(event.text for event in batch if isinstance(event, TextDelta))
                    yield text
        except SwitchboardError as error:
            raise refusal(error.user_message()) from None
