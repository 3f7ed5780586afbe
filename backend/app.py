"""`Backend`: everything built from one configuration, what the UI, the Python client, the API and the tests call.

It builds the providers, the model registry, the services, the tools and the store, and hands the replies their
collaborators. It is also the one place that picks, for each thing replicas share, the implementation in this
process or the one in Redis (`[redis] url`: backend/replicas/): the relay of replies, per-visitor limits and
upload allowances, sign-ins, failed logins, image URL tokens and whose each browser session is. Nothing else
imports Redis code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import Settings, load_settings
from .conversations.open_chats import SharedConversations
from .conversations.stores import ApiKeyStore, ConversationStore, PresetStore
from .documents.reader import DocumentReader
from .limits import UploadAllowance, VisitorLimits
from .providers import Provider, create_provider
from .replies.manager import Replies
from .services.chat import ChatService
from .services.image_store import ImageStore
from .services.images import ImageService
from .services.registry import ModelRegistry
from .services.vision import VisionService
from .session_owners import SessionOwners
from .store import SQLStore
from .tools import ToolBox

if TYPE_CHECKING:
    from .auth import Sessions, Users
    from .replicas.files import SharedFiles
    from .replicas.relay import Relay, RemoteReply


class Backend:
    """Everything built from one configuration: providers, model registry, services, store and replies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Provider[Any]] = {
            name: create_provider(name, config) for name, config in settings.providers.items()
        }
        self.models = ModelRegistry(settings, self.providers)
        self.chat = ChatService(self.models)
        store = settings.store
        self.store = SQLStore.for_settings(settings.app.data_dir, store.url, store.password())
        self.conversations: ConversationStore = self.store.conversations
        self.presets: PresetStore = self.store.presets
        self.api_keys: ApiKeyStore = self.store.api_keys
        # The conversations pages show, one copy each however many pages show one (what a page keeps is a ShownChat).
        self.open_chats = SharedConversations(self.conversations)
        self.images = ImageService(self.models, ImageStore(settings.app.data_dir / "images", self.store.images))
        self.vision = VisionService(self.chat)
        self.documents = DocumentReader(
            max_bytes=settings.app.max_upload_bytes, seconds=settings.app.document_read_timeout
        )
        self.relay = self._relay()
        self.replies: Replies[RemoteReply] = Replies(
            self.chat, self.conversations, title_model=settings.defaults.title, relay=self.relay
        )
        self.shared_files = self._shared_files()
        self.tools = ToolBox(settings.tools)  # MCP servers start when a reply first needs them

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Backend:
        return cls(load_settings(path))

    # --- what replicas share: here, or in Redis ----------------------------------------------------------------

    def _relay(self) -> Relay | None:
        """The link to other replicas through Redis, when `[redis] url` is set."""
        redis = self.settings.redis
        if not redis.url:
            return None
        from .replicas.relay import Relay

        return Relay(redis.url, self.conversations, password=redis.password(), cooldowns=self.chat.cooldowns)

    def _shared_files(self) -> SharedFiles | None:
        """Image URL tokens every replica can look up (the API keeps its own as well), with replicas."""
        if self.relay is None:
            return None
        from .replicas.files import SharedFiles

        return SharedFiles(self.relay.redis)

    def visitor_limits(self, max_concurrent: int, max_per_minute: int) -> VisitorLimits:
        """Per-visitor limits (backend/limits.py), counted across every replica when there are."""
        if self.relay is None:
            return VisitorLimits(max_concurrent, max_per_minute)
        from .replicas.limits import SharedVisitorLimits
        from .replicas.relay import PRESENCE

        return SharedVisitorLimits(self.relay.redis, self.relay.replica, PRESENCE, max_concurrent, max_per_minute)

    def upload_allowance(self, max_bytes: int) -> UploadAllowance:
        """The bytes each visitor may upload in an hour (0: no limit), counted across every replica when there
        are."""
        if self.relay is None or not max_bytes:
            return UploadAllowance(max_bytes)
        from .replicas.limits import SharedUploadAllowance

        return SharedUploadAllowance(self.relay.redis, max_bytes)

    def sessions(self, users: Users) -> Sessions:
        """Gradio's sign-ins for `users`: in this process, or in Redis so that a sign-in (and a sign-out) holds on
        every replica."""
        redis = self.settings.redis
        if not redis.url:
            from .auth import Sessions  # (logins: loaded only when there are)

            return Sessions(users)
        from .replicas.sessions import SharedSessions

        return SharedSessions(users, redis.url, redis.password())

    def session_owners(self) -> SessionOwners:
        """Whose each browser session is: bound in this process, or in Redis so the binding holds on every
        replica."""
        redis = self.settings.redis
        if not redis.url:
            return SessionOwners()
        from .replicas.bindings import SharedSessionOwners

        return SharedSessionOwners(redis.url, redis.password())

    def share_login_failures(self, users: Users) -> None:
        """With replicas, count `users`' failed logins in Redis, so that guessing is throttled across all of them."""
        redis = self.settings.redis
        if redis.url:
            from .replicas.failures import shared_failures

            users.count_failures(*shared_failures(redis.url, redis.password()))

    # --- life -----------------------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Let providers that load something (local models) start now, in the background."""
        for provider in self.providers.values():
            provider.warm_up()

    async def open_store(self, owners: Iterable[str] = ()) -> None:
        """Open the conversation store now (schema migrations, and the one-time import of `owners`' JSON
        conversations, included), so a damaged, locked, unreachable or newer database stops start-up with one
        sentence (ConfigError) rather than the first request."""
        await self.store.open(owners)
        if self.relay is None:
            # One app process per store: a reply still marked running was cut off when the app last stopped. (With
            # replicas, others may be writing theirs: the relay's sweep finds those whose replica died.)
            await self.store.conversations.interrupt_replies()
        await self.store.aclose()  # this loop's connections; the server opens its own

    async def aclose(self) -> None:
        await self.replies.aclose()
        await asyncio.gather(
            *(provider.aclose() for provider in self.providers.values()), self.store.aclose(), self.tools.aclose()
        )


__all__ = ["Backend"]
