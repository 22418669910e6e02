"""What a pipeline invoicing into Siigo must say: Siigo catalog ids and DANE city codes."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CityCode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country_code: str = "CO"
    state_code: str = "11"
    city_code: str = "11001"


class PipelineSettings(BaseModel):
    """How a pipeline invoices into Siigo. Ids are Siigo's own (its catalog ids).

    The class keeps the name the API has always published for a pipeline's settings.
    """

    model_config = ConfigDict(extra="forbid")

    document_type_id: str = Field(description="Invoice document type (Siigo FV id).")
    seller_id: str = Field(description="ERP user the invoice is attributed to.")
    payment_type_id: str = Field(description="Payment type the buyer's payment is booked as.")
    cost_center: str | None = None
    tax_id: str = Field(description="Tax applied to goods (IVA).")
    tax_percentage: Decimal = Field(default=Decimal(19), ge=0, le=100)
    #: Product code used for the shipping line; without it, shipping paid by the buyer
    #: makes the order wait in ``needs_mapping``.
    shipping_product_code: str | None = None
    shipping_taxed: bool = True
    #: When an order becomes an invoice. Only ``paid`` for now.
    invoice_on: Literal["paid"] = "paid"
    #: What to do with a SKU that has no mapping: ``none`` parks the order in
    #: ``needs_mapping``; ``same_code`` uses the SKU as the ERP code when that product exists;
    #: ``default_product`` invoices it as ``default_product_code``.
    sku_fallback: Literal["none", "same_code", "default_product"] = "none"
    default_product_code: str | None = None
    send_stamp: bool = False
    send_mail: bool = False
    default_city: CityCode = Field(default_factory=CityCode)
    #: Days a transient failure is retried before the order is marked failed.
    max_retry_hours: float = Field(default=48, gt=0)
