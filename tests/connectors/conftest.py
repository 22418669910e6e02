"""Fixtures shared by the connector tests."""

# --- Siigo (fixtures live in siigo_fixtures.py) ---------------------------------------
from tests.connectors.siigo_fixtures import siigo_harness, siigo_sandbox

__all__ = ["siigo_harness", "siigo_sandbox"]
# --- end Siigo ------------------------------------------------------------------------
