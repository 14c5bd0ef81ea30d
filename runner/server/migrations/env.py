"""Alembic environment: migrations run against the engine the server passes in."""

from __future__ import annotations

from alembic import context

from runner.server.tables import metadata

connection = context.config.attributes.get("connection")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
