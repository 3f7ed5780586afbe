"""The tables, as SQLAlchemy Core metadata: the migrations create them, the store queries them.

Each conversation is one row; its messages are rows of their own, numbered in the order they were added, each
naming the message it follows (`parent`): a tree whose branch on show ends at the conversation's `leaf`. A reply
being generated has a row in `replies` while it runs and grows by rows in `reply_parts` (one per checkpoint, so a
long reply's checkpoints cost the same each, not more and more). Each generated image is a row referencing its
file; each system-prompt preset is a row. Every key starts with the owner, so no query can reach a row without
naming whose it is; API keys, found by the key a request carries, are kept as hashes. Image bytes are files (see
MediaFiles); messages reference them by name.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKeyConstraint, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.sql.schema import SchemaItem

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("title", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("model", Text),
    Column("settings", Text, nullable=False),  # JSON
    Column("revision", Integer, nullable=False),
    Column("search_text", Text, nullable=False),  # title and every message's text, what search looks in
    Column("leaf", Integer),  # the last message of the branch on show (None: no message yet)
    Index("ix_conversations_owner_updated", "owner", "updated"),
)


def _message_key() -> list[SchemaItem]:
    """The columns that name a message (owner, conversation, position), and the conversation they belong to."""
    return [
        Column("owner", String(200), primary_key=True),
        Column("conversation_id", String(32), primary_key=True),
        Column("position", Integer, primary_key=True),
        ForeignKeyConstraint(
            ["owner", "conversation_id"], ["conversations.owner", "conversations.id"], ondelete="CASCADE"
        ),
    ]


messages = Table(
    "messages",
    metadata,
    *_message_key(),
    Column("role", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON: the message's other fields (provenance, timings, images)
    Column("parent", Integer),  # the position of the message this one follows (None: a first message)
)

replies = Table("replies", metadata, *_message_key(), Column("started", Float, nullable=False))

reply_parts = Table(
    "reply_parts",
    metadata,
    *_message_key(),
    Column("seq", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("reasoning", Text, nullable=False),
    Column("at", Float, nullable=False),
)

legacy_imports = Table(
    "legacy_imports",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("at", Float, nullable=False),
)

images = Table(
    "images",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),  # the image file's name in the owner's folder
    Column("created", Float, nullable=False),
    Column("details", Text, nullable=False),  # JSON: prompt, model, size, negative prompt, seed, revised prompt
    Index("ix_images_owner_created", "owner", "created"),
)

legacy_image_imports = Table(
    "legacy_image_imports",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("at", Float, nullable=False),
)

presets = Table(
    "presets",
    metadata,
    Column("owner", String(200), primary_key=True),
    Column("name", String(80), primary_key=True),  # what the picker shows; saving under a name replaces it
    Column("text", Text, nullable=False),  # the system prompt
    Column("updated", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the key: the key itself is never kept
    Column("owner", String(200), nullable=False),
    Column("id", String(16), nullable=False, unique=True),  # shown in lists, named to revoke it
    Column("created", Float, nullable=False),
    Column("revoked", Float),  # when, once revoked
    Index("ix_api_keys_owner", "owner"),
)
