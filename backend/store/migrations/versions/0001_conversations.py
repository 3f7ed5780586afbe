"""Conversations, their messages, full-text search, and the record of JSON folders imported.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
    )
    op.create_index("ix_conversations_owner_updated", "conversations", ["owner", "updated"])
    op.create_table(
        "messages",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("conversation_id", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner", "conversation_id"], ["conversations.owner", "conversations.id"], ondelete="CASCADE"
        ),
    )
    op.create_table(
        "legacy_imports",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Ranked search with the engine's own full-text index: a generated vector over title and text.
        op.execute(
            "ALTER TABLE conversations ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_conversations_search ON conversations USING GIN (search_vector)")
    else:
        # SQLite: an FTS5 index kept in step with conversations.search_text by triggers.
        op.execute(
            "CREATE VIRTUAL TABLE conversation_search USING fts5("
            "search_text, content='conversations', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN "
            "INSERT INTO conversation_search(rowid, search_text) VALUES (new.rowid, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER conversations_ad AFTER DELETE ON conversations BEGIN "
            "INSERT INTO conversation_search(conversation_search, rowid, search_text) "
            "VALUES ('delete', old.rowid, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER conversations_au AFTER UPDATE OF search_text ON conversations BEGIN "
            "INSERT INTO conversation_search(conversation_search, rowid, search_text) "
            "VALUES ('delete', old.rowid, old.search_text); "
            "INSERT INTO conversation_search(rowid, search_text) VALUES (new.rowid, new.search_text); END"
        )


def downgrade() -> None:
    op.drop_table("legacy_imports")
    op.drop_table("messages")
    op.drop_table("conversations")
