"""What every domain's HTTP endpoints share: pagination, error documentation, idempotent
202s, tenant scoping, path parameters and the audit record."""
