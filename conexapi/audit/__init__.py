"""The audit log as the API shows it (records are written through ``kit/api/audit``)."""
