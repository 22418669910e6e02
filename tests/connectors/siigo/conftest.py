"""Fixtures shared by the Siigo connector tests."""

# --- Siigo (fixtures live in fixtures.py) ---------------------------------------------
from tests.connectors.siigo.fixtures import (
    siigo_account,
    siigo_harness,
    siigo_headers,
    siigo_sandbox,
)

__all__ = ["siigo_account", "siigo_harness", "siigo_headers", "siigo_sandbox"]
# --- end Siigo ------------------------------------------------------------------------
