"""The service layer: what the UI, the Python client and the tests call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import Settings, load_settings
from .conversations.open_chats import SharedConversations
from .conversations.stores import ApiKeyStore, ConversationStore, PresetStore
from .documents.reader import DocumentReader
from .providers import Provider, create_provider
from .replies.manager import Replies
from .services.chat import ChatService
from .services.image_store import ImageStore
from .services.images import ImageService
from .services.registry import ModelRegistry
from .services.vision import VisionService
from .store import SQLStore
from .tools import ToolBox

if TYPE_CHECKING:
    from .replicas.relay import Relay


class Backend:
    """Everything built from one configuration: providers, model registry and services."""

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
        self.shared = SharedConversations(self.conversations)
        self.images = ImageService(self.models, ImageStore(settings.app.data_dir / "images", self.store.images))
        self.vision = VisionService(self.chat)
        self.documents = DocumentReader(
            max_bytes=settings.app.max_upload_bytes, seconds=settings.app.document_read_timeout
        )
        self.replies = Replies(self.chat, self.conversations, title_model=settings.defaults.title, relay=self._relay())
        self.tools = ToolBox(settings.tools)  # MCP servers start when a reply first needs them

    def _relay(self) -> Relay | None:
        """The link to other replicas through Redis, when `[redis] url` is set."""
        redis = self.settings.redis
        if not redis.url:
            return None
        from .replicas.relay import Relay

        return Relay(redis.url, self.conversations, password=redis.password(), cooldowns=self.chat.cooldowns)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Backend:
        return cls(load_settings(path))

    def warm_up(self) -> None:
        """Let providers that load something (local models) start now, in the background."""
        for provider in self.providers.values():
            provider.warm_up()

    async def open_store(self, owners: Iterable[str] = ()) -> None:
        """Open the conversation store now (schema migrations, and the one-time import of `owners`' JSON
        conversations, included), so a damaged, locked, unreachable or newer database stops start-up with one
        sentence (ConfigError) rather than the first request."""
        await self.store.open(owners)
        if self.replies.relay is None:
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
