"""Run records owned by the token that created them; locks held by an owner with a lease.

Issue #17: any runner token could rewrite any run record, and a lock was "already mine" for any
process naming the same run id. Records kept before this migration have no owner and are read-only
from now on; locks held before it get an owner nobody has and a lease of one hour, after which
another run may take them (or an admin breaks them with `runner server locks break`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(32), nullable=True))
    with op.batch_alter_table("locks") as batch:
        batch.add_column(sa.Column("owner_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("token_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("expires", sa.DateTime(timezone=True), nullable=True))
    expires = datetime.now(UTC) + timedelta(hours=1)
    op.execute(sa.text("UPDATE locks SET expires = :e").bindparams(e=expires))


def downgrade() -> None:
    with op.batch_alter_table("locks") as batch:
        batch.drop_column("expires")
        batch.drop_column("token_id")
        batch.drop_column("owner_hash")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
