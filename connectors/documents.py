"""What every ERP connector shares when it turns a canonical order into its document.

The product hands an ERP connector the order, the pipeline's settings for that ERP and the
merchant's mappings; the connector builds its own document (its money rule, its id types,
its lines). What it cannot map it reports as :class:`MappingMissing`, naming exactly what
is missing: the order then waits in ``needs_mapping`` and resumes by itself once the
mapping exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from connectors.models import CustomerSpec, InvoiceDraft, Order


@runtime_checkable
class PipelineRules(Protocol):
    """What the product itself reads of a pipeline's settings: every ERP connector's
    pipeline-settings model (its spec's ``pipeline_settings``) has these fields beside
    those it needs to build its documents."""

    @property
    def invoice_on(self) -> Literal["paid"]:
        """When an order becomes an invoice."""
        ...

    @property
    def max_retry_hours(self) -> float:
        """Hours a transient failure is retried before the order is marked failed."""
        ...


class MappingMissing(Exception):
    def __init__(self, kind: str, values: list[str], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.values = values
        self.message = message


class BuyerIncomplete(Exception):
    """The marketplace has not finished processing the buyer's fiscal data yet."""


@dataclass
class Mappings:
    """The merchant's mappings of a pipeline: marketplace value → ERP value, per kind."""

    sku: dict[str, str] = field(default_factory=dict)
    id_type: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ErpDocument:
    """An order as the ERP's document, with the customer it is billed to."""

    customer: CustomerSpec
    draft: InvoiceDraft
    #: Codes that came from a fallback rule and must exist in the ERP.
    fallback_codes: tuple[str, ...]


SkuFallback = Literal["none", "same_code", "default_product"]


def line_key(sku: str | None, item_id: str) -> str:
    """What a SKU mapping is keyed on: the seller's SKU, else the listing id."""
    return sku or item_id


def resolve_codes(
    order: Order, mappings: Mappings, sku_fallback: SkuFallback, default_product_code: str | None
) -> tuple[list[str], list[str]]:
    """ERP product codes per line, and those that came from a fallback rule."""
    codes: list[str] = []
    fallback: list[str] = []
    missing: list[str] = []
    for line in order.lines:
        key = line_key(line.sku, line.item_id)
        code = mappings.sku.get(key)
        if code is None and sku_fallback == "same_code" and line.sku:
            code = line.sku
            fallback.append(code)
        elif code is None and sku_fallback == "default_product":
            code = default_product_code
            if code:
                fallback.append(code)
        if code is None:
            missing.append(key)
            codes.append("")
        else:
            codes.append(code)
    if missing:
        raise MappingMissing(
            "sku",
            sorted(set(missing)),
            "no ERP product for marketplace SKU " + ", ".join(sorted(set(missing))),
        )
    return codes, fallback
