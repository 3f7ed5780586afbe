"""SQLite: the search index's segments are merged beside the writer (the store's upkeep thread), not inside the
saves that happen to fill a level: FTS5's automatic merging made one save in twenty wait 3-15 ms. A level is
still merged inside a save when it reaches 64 segments (FTS5's "crisis" merge, 16 by default), which only steady
writes faster than the upkeep's merging reach.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _merging(automerge: int, crisismerge: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for option, value in (("automerge", automerge), ("crisismerge", crisismerge)):
            op.execute(f"INSERT INTO conversation_search(conversation_search, rank) VALUES ('{option}', {value})")


def upgrade() -> None:
    _merging(0, 64)


def downgrade() -> None:
    _merging(4, 16)  # FTS5's defaults
