"""Conversations as trees (a message names the one it follows; the conversation, the end of the branch on show)
and replies written while they stream (a row per running reply, a row per checkpoint).

Revision ID: 0003
Revises: 0002
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _message_key() -> list[Any]:
    """A message's key columns, with the conversation they belong to."""
    return [
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("conversation_id", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.ForeignKeyConstraint(
            ["owner", "conversation_id"], ["conversations.owner", "conversations.id"], ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.add_column("messages", sa.Column("parent", sa.Integer))
    op.add_column("conversations", sa.Column("leaf", sa.Integer))
    # Every stored conversation so far is one branch: each message follows the one before.
    op.execute("UPDATE messages SET parent = position - 1 WHERE position > 0")
    op.execute(
        "UPDATE conversations SET leaf = (SELECT max(m.position) FROM messages m "
        "WHERE m.owner = conversations.owner AND m.conversation_id = conversations.id)"
    )
    op.create_table("replies", *_message_key(), sa.Column("started", sa.Float, nullable=False))
    op.create_table(
        "reply_parts",
        *_message_key(),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reasoning", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reply_parts")
    op.drop_table("replies")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("leaf")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("parent")
