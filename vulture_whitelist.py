"""Names only a framework, a protocol or a test reads: the dead-code check (`make lint`,
vulture) is told they are used. Every entry says who uses it; anything else that vulture
reports is dead and is deleted, not added here."""

from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# Response and request fields: FastAPI serializes them, API clients read them.
_.token_type  # auth/endpoints.py TokenOut
_.event_status  # webhooks/endpoints.py WebhookAck
_.next_cursor  # ops/pagination.py, reconcile/schemas.py pages
_.erp_document  # ops/schemas.py
_.order_state  # ops/schemas.py
_.truncated  # ops/schemas.py
_.difference  # reconcile/schemas.py
_.first_seen_24h  # reconcile/schemas.py

# Columns written for operators, the API or audits, and read back through the ORM or
# pydantic's ``from_attributes`` (names vulture cannot follow).
_.generation  # models/auth.py refresh-token rotation
_.revoked_reason  # models/auth.py
_.created_by_user_id  # models/auth.py API keys
_.processed_at  # models/sync.py WebhookEvent
_.finished_at  # models/sync.py SyncRun
_.upstream_request_ids  # models/sync.py SyncRun
_.error_message  # models/sync.py SyncRun
_.last_error_code  # models/sync.py OrderSync
_.last_error_message  # models/sync.py OrderSync
_.active_order_sync_id  # models/sync.py: its UNIQUE index is the point, never read
_.isolation_level  # db.py: the SQLite driver reads it on connect

# Canonical order fields: connectors fill them; part of the connector contract.
_.variation_id  # connectors/models.py
_.full_unit_price  # connectors/models.py
_.approved_at  # connectors/models.py
_.currency  # connectors/models.py
_.paid_amount  # connectors/models.py
# Siigo's document-type answer, validated as Siigo sends it.
_.cost_center_mandatory  # connectors/siigo/schemas.py
_.automatic_number  # connectors/siigo/schemas.py
_.consecutive  # connectors/siigo/schemas.py
_.discount_type  # connectors/siigo/schemas.py
_.electronic_type  # connectors/siigo/schemas.py

# dataclass fields read through ``dataclasses.asdict`` (the sweep's log line).
_.events_enqueued  # sync/sweeper.py SweepReport
_.runs_requeued  # sync/sweeper.py SweepReport
_.retries_started  # sync/sweeper.py SweepReport
_.mapping_resumed  # sync/sweeper.py SweepReport
_.reauth_resumed  # sync/sweeper.py SweepReport

# Hooks a library calls: SQLAlchemy type decorators and pool events, Alembic's
# compare_type, prometheus collectors, uvicorn's server, Celery's worker, http.server.
_.cache_ok  # models/base.py TypeDecorator
_.process_bind_param  # models/base.py TypeDecorator
_.process_result_value  # models/base.py TypeDecorator
_.proxy  # db.py pool "checkout" event signature
_.metadata_column  # migrate.py compare_type signature
_.describe  # reconcile/metrics.py collector
_.collect  # reconcile/metrics.py collector
_.capture_signals  # serving.py uvicorn.Server
_.should_exit  # serving.py uvicorn.Server
_.create_app_from_env  # app.py: uvicorn's factory string in cli.py
_.on_consumer_ready  # workers/embedded.py Celery WorkController
_.consumer  # workers/embedded.py on_consumer_ready signature
_.should_stop  # workers/embedded.py Celery WorkController
_.exc_type  # workers/embedded.py __exit__ signature
_.tb  # workers/embedded.py __exit__ signature
_._heap  # workers/beat.py Celery Scheduler: None makes the next tick rebuild it
_.address_family  # workers/metrics.py http.server
_.log_message  # workers/metrics.py http.server
_.conexapi  # workers/signals.py: imported in the parent so forked children share pages

# Called by tests only, on purpose.
_.schema_drift  # migrate.py: the migrations test holds models and migrations together
_.in_flight  # kit/locks.py SingleFlight: the locks test checks that no call leaks
_.forget_catalogs  # connectors/siigo/erp.py: the client test reloads catalogs with it

# Read outside the scanned paths, or by name.
_.ensure_utf8mb4  # migrate.py: called by migrations/env.py before any migration runs
_.http_header_timeout_seconds  # settings.py: kit/http_server.py reads the limits by name
_.http_body_timeout_seconds  # settings.py: kit/http_server.py reads the limits by name
_.http_max_connections  # settings.py: kit/http_server.py reads the limits by name

# pydantic-settings hooks: the settings class calls them while it reads its sources.
_.settings_customise_sources  # settings.py Settings
_.get_field_value  # settings.py _ConnectorsSource

# The flat list of every documented variable: the settings tests check it.
_.settings_docs  # kit/settings_doc.py
