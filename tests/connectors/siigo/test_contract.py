"""Siigo passes the shared ERP contract against its sandbox."""

from __future__ import annotations

import pytest

from tests.connectors.contract_erp import ErpContract, ErpHarness
from tests.connectors.siigo.fixtures import SiigoHarness


class TestSiigoContract(ErpContract):
    @pytest.fixture
    def erp(self, siigo_harness: SiigoHarness) -> ErpHarness:
        return siigo_harness
