"""reconciliation: sync cursors, daily reports and their lines

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import conexapi.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(mysql.JSON(), "mysql")
_TIME = conexapi.models.base.UTCDateTime
_MONEY = sa.Numeric(precision=18, scale=2)


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", _ID, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "sync_cursors",
        _id(),
        sa.Column("pipeline_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", _TIME(), nullable=False),
        sa.Column("last_run_at", _TIME(), nullable=True),
        sa.Column("last_success_at", _TIME(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("orders_seen", sa.Integer(), nullable=False),
        sa.Column("syncs_requested", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"],
            name=op.f("fk_sync_cursors_pipeline_id_pipelines"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_cursors")),
        sa.UniqueConstraint("pipeline_id", "name", name=op.f("uq_sync_cursors_pipeline_id_name")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_table(
        "reconciliation_reports",
        _id(),
        sa.Column("pipeline_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("generated_at", _TIME(), nullable=False),
        sa.Column("orders_total", sa.Integer(), nullable=False),
        sa.Column("orders_to_invoice", sa.Integer(), nullable=False),
        sa.Column("gross_sales", _MONEY, nullable=False),
        sa.Column("invoices_found", sa.Integer(), nullable=False),
        sa.Column("invoiced_total", _MONEY, nullable=False),
        sa.Column("cancelled_orders", sa.Integer(), nullable=False),
        sa.Column("other_invoices", sa.Integer(), nullable=False),
        sa.Column("differences", sa.Integer(), nullable=False),
        sa.Column("by_kind", _JSON, nullable=False),
        sa.Column("first_seen", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"],
            name=op.f("fk_reconciliation_reports_pipeline_id_pipelines"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_reports")),
        sa.UniqueConstraint(
            "pipeline_id", "day", name=op.f("uq_reconciliation_reports_pipeline_id_day")
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index(
        "ix_reconciliation_reports_day", "reconciliation_reports", ["day"], unique=False
    )
    op.create_table(
        "reconciliation_lines",
        _id(),
        sa.Column("report_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_order_id", sa.String(length=64), nullable=True),
        sa.Column("order_status", sa.String(length=32), nullable=True),
        sa.Column("expected_total", _MONEY, nullable=True),
        sa.Column("invoiced_total", _MONEY, nullable=True),
        sa.Column("invoices", _JSON, nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reconciliation_reports.id"],
            name=op.f("fk_reconciliation_lines_report_id_reconciliation_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_lines")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index(
        "ix_reconciliation_lines_report_id_kind",
        "reconciliation_lines",
        ["report_id", "kind"],
        unique=False,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index on its own while
    # a foreign key needs it.
    op.drop_table("reconciliation_lines")
    op.drop_table("reconciliation_reports")
    op.drop_table("sync_cursors")
