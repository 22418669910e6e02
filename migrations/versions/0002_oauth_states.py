"""oauth states: consents in progress (single-use, short-lived state + PKCE verifier)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 21:09:50.535849
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import conexapi.models.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('oauth_states',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('connector', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('code_verifier', sa.Text(), nullable=False),
    sa.Column('return_to', sa.String(length=1000), nullable=True),
    sa.Column('site', sa.String(length=8), nullable=True),
    sa.Column('browser_binding', sa.String(length=64), nullable=True),
    sa.Column('created_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', conexapi.models.base.UTCDateTime(), nullable=False),
    sa.Column('consumed_at', conexapi.models.base.UTCDateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_oauth_states_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_states')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_oauth_states_state_hash')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_ci'
    )
    op.create_index('ix_oauth_states_expires_at', 'oauth_states', ['expires_at'], unique=False)
    op.create_index(op.f('ix_oauth_states_merchant_id'), 'oauth_states', ['merchant_id'], unique=False)


def downgrade() -> None:
    # Dropping the table drops its indexes; MariaDB refuses to drop the merchant_id index
    # on its own while the foreign key needs it.
    op.drop_table('oauth_states')
