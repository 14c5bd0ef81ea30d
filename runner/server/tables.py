"""The database schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

people = Table(
    "people",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("display_name", String(400), nullable=False),
    Column("email", String(400), nullable=False, default=""),
    Column("ci_logins", JSON, nullable=False, default=list),
    Column("ssh_principals", JSON, nullable=False, default=list),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team", String(200), primary_key=True),
    Column("person_id", String(200), ForeignKey("people.id", ondelete="CASCADE"), primary_key=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),  # runner | approver | admin
    Column("person_id", String(200), ForeignKey("people.id", ondelete="CASCADE"), nullable=True),
    Column("label", String(400), nullable=False, default=""),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("token_id", String(32), ForeignKey("tokens.id", ondelete="CASCADE"), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True), nullable=True),
)

interruptions = Table(
    "interruptions",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("step_id", String(200), nullable=False),
    Column("request", JSON, nullable=False),
    Column("state", String(20), nullable=False),  # waiting | approved | aborted | cancelled
    Column("responsible", String(200), nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    #: the id of the runner token that registered it: only it (or an admin) may cancel it; None
    #: for one kept before migration 0004 (only an admin may)
    Column("owner", String(32), nullable=True),
    UniqueConstraint("run_id", "step_id", name="uq_interruption_run_step"),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "interruption_id",
        String(200),
        ForeignKey("interruptions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("person_id", String(200), nullable=False),
    Column("username", String(200), nullable=False),
    Column("result", String(10), nullable=False),
    Column("notes", Text, nullable=False, default=""),
    Column("fields", JSON, nullable=False, default=dict),
    Column("at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("record", JSON, nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    #: the id of the token that created the record: no other token may write it
    Column("owner", String(32), nullable=True),
)

locks = Table(
    "locks",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("detached", Boolean, nullable=False, default=False),
    Column("since", DateTime(timezone=True), nullable=False),
    #: sha256 of the holding process's random owner token: only it renews or releases
    Column("owner_hash", String(64), nullable=True),
    #: the API token the holder used: a detached lock is handed only to its run's resume by it
    Column("token_id", String(32), nullable=True),
    #: the end of the lease, renewed by the holder's heartbeat; past it, another may take it
    Column("expires", DateTime(timezone=True), nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("interruption_id", String(200), nullable=True, index=True),
    Column("actor", String(200), nullable=False, default=""),
    Column("data", JSON, nullable=False, default=dict),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
