"""Alembic's entry point: the store runs it in-process with its own connection (see backend/store/engine.py)."""

from alembic import context

from backend.store._schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
