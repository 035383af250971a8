"""Initial directory schema: domains, users, aliases, user_settings.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("domain_id", sa.Integer(), sa.ForeignKey("domains.id", ondelete="CASCADE",
                                                           name="fk_users_domain_id"), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("quota_messages", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("address", name="uq_users_address"),
    )
    op.create_index("ix_users_domain_id", "users", ["domain_id"])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("domain_id", sa.Integer(), sa.ForeignKey("domains.id", ondelete="CASCADE",
                                                           name="fk_aliases_domain_id"), nullable=False),
        sa.Column("source", sa.String(320), nullable=False),
        sa.Column("destination", sa.String(320), nullable=False),
        sa.UniqueConstraint("source", "destination", name="uq_aliases_source_destination"),
    )
    op.create_index("ix_aliases_domain_id", "aliases", ["domain_id"])
    op.create_index("ix_aliases_source", "aliases", ["source"])
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE",
                                                         name="fk_user_settings_user_id"), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_settings")
    op.drop_index("ix_aliases_source", table_name="aliases")
    op.drop_index("ix_aliases_domain_id", table_name="aliases")
    op.drop_table("aliases")
    op.drop_index("ix_users_domain_id", table_name="users")
    op.drop_table("users")
    op.drop_table("domains")
