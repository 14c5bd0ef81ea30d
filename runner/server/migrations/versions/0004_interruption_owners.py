"""Interruptions owned by the runner token that registered them.

Attack pass: any runner token could cancel any run's interruption, which then could never be
approved. Only the registering token (or an admin) may cancel one now. Interruptions kept before
this migration have no owner: only an admin can cancel them (fail closed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("interruptions") as batch:
        batch.add_column(sa.Column("owner", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interruptions") as batch:
        batch.drop_column("owner")
