"""Merchants: the tenants every pipeline, connection and user belongs to."""
