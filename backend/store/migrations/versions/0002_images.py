"""Generated images' details (prompt, model, size, seed...): rows that reference the image files.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_images_owner_created", "images", ["owner", "created"])
    op.create_table(
        "legacy_image_imports",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("legacy_image_imports")
    op.drop_table("images")
