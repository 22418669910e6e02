"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 21:06:38.202383
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import conexapi.models.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('merchants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('slug', name=op.f('uq_merchants_slug')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('dedupe_key', sa.String(length=190), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('external_account_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('ignore_reason', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=True),
    sa.Column('duplicate_count', sa.Integer(), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('received_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('enqueued_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('processed_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('connector', 'dedupe_key', name=op.f('uq_webhook_events_connector_dedupe_key')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_status_received_at', ['status', 'received_at'], unique=False)

    op.create_table('connections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('external_account_id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('credentials', sa.Text(), nullable=True),
    sa.Column('token_expires_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('last_refresh_failed_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_connections_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connections')),
    sa.UniqueConstraint('connector', 'external_account_id', name=op.f('uq_connections_connector_external_account_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connections_merchant_id'), ['merchant_id'], unique=False)

    op.create_table('pipelines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source_connection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_connection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_pipelines_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_connection_id'], ['connections.id'], name=op.f('fk_pipelines_source_connection_id_connections')),
    sa.ForeignKeyConstraint(['target_connection_id'], ['connections.id'], name=op.f('fk_pipelines_target_connection_id_connections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipelines_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipelines_source_connection_id'), ['source_connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipelines_target_connection_id'), ['target_connection_id'], unique=False)

    op.create_table('mappings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('pipeline_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('source_value', sa.String(length=120), nullable=False),
    sa.Column('target_value', sa.String(length=120), nullable=False),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_mappings_pipeline_id_pipelines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mappings')),
    sa.UniqueConstraint('pipeline_id', 'kind', 'source_value', name=op.f('uq_mappings_pipeline_id_kind_source_value')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    op.create_table('order_syncs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('pipeline_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_order_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=40), nullable=True),
    sa.Column('erp_document_id', sa.String(length=64), nullable=True),
    sa.Column('erp_document_name', sa.String(length=64), nullable=True),
    sa.Column('erp_total', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('erp_stamp_status', sa.String(length=32), nullable=True),
    sa.Column('order_total', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('order_status', sa.String(length=32), nullable=True),
    sa.Column('order_updated_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('first_seen_via', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('rerun_requested', sa.Boolean(), nullable=False),
    sa.Column('last_error_class', sa.String(length=32), nullable=True),
    sa.Column('last_error_code', sa.String(length=64), nullable=True),
    sa.Column('last_error_message', sa.String(length=1000), nullable=True),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_order_syncs_pipeline_id_pipelines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_syncs')),
    sa.UniqueConstraint('pipeline_id', 'external_order_id', name=op.f('uq_order_syncs_pipeline_id_external_order_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    with op.batch_alter_table('order_syncs', schema=None) as batch_op:
        batch_op.create_index('ix_order_syncs_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)

    op.create_table('sync_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_sync_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('active_order_sync_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Computed("CASE WHEN status IN ('queued', 'running') THEN order_sync_id ELSE NULL END", persisted=True), nullable=True),
    sa.Column('webhook_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('started_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('finished_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('error_class', sa.String(length=32), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('upstream_request_ids', sa.JSON().with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('worker', sa.String(length=120), nullable=True),
    sa.ForeignKeyConstraint(['order_sync_id'], ['order_syncs.id'], name=op.f('fk_sync_runs_order_sync_id_order_syncs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_event_id'], ['webhook_events.id'], name=op.f('fk_sync_runs_webhook_event_id_webhook_events'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs')),
    sa.UniqueConstraint('active_order_sync_id', name=op.f('uq_sync_runs_active_order_sync_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_order_sync_id'), ['order_sync_id'], unique=False)
        batch_op.create_index('ix_sync_runs_status_heartbeat_at', ['status', 'heartbeat_at'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index on its own while
    # a foreign key needs it.
    op.drop_table('sync_runs')
    op.drop_table('order_syncs')
    op.drop_table('mappings')
    op.drop_table('pipelines')
    op.drop_table('connections')
    op.drop_table('webhook_events')
    op.drop_table('merchants')
