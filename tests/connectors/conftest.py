"""Fixtures shared by the connector tests."""

# --- Siigo (fixtures live in siigo_fixtures.py) ---------------------------------------
from tests.connectors.siigo_fixtures import (
    siigo_account,
    siigo_harness,
    siigo_headers,
    siigo_sandbox,
)

__all__ = ["siigo_account", "siigo_harness", "siigo_headers", "siigo_sandbox"]
# --- end Siigo ------------------------------------------------------------------------
