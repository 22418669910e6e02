"""Canonical models every connector speaks. Money is ``Decimal``; time is aware UTC."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- marketplace side ------------------------------------------------------------------


class OrderStatus(StrEnum):
    """Marketplace-neutral order status; the pipeline policy decides from it."""

    pending = "pending"  # confirmed, payment required or in process
    partially_paid = "partially_paid"
    paid = "paid"
    cancelled = "cancelled"
    invalid = "invalid"


class Address(_Model):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None


class BuyerIdentity(_Model):
    """Who the invoice is made out to, as far as the marketplace knows it."""

    external_id: str | None = None
    doc_type: str | None = None  # marketplace's code: CC, NIT, CE, ...
    doc_number: str | None = None
    person_type: Literal["person", "company"] | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Address | None = None
    #: False while the marketplace is still processing the fiscal data (fields may be null).
    complete: bool = True


class OrderLine(_Model):
    item_id: str
    variation_id: str | None = None
    sku: str | None = None
    title: str
    quantity: Decimal
    #: What the buyer pays per unit after discounts (tax-inclusive where ``prices_include_tax``).
    unit_price: Decimal
    #: List price per unit before discounts, when the marketplace says it.
    full_unit_price: Decimal | None = None


class Payment(_Model):
    id: str
    status: str
    amount: Decimal
    shipping_cost: Decimal = Decimal(0)
    method: str | None = None
    approved_at: datetime | None = None


class Order(_Model):
    connector: str
    external_id: str
    account_id: str
    pack_id: str | None = None
    status: OrderStatus
    raw_status: str
    currency: str
    site: str | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime | None = None
    lines: list[OrderLine]
    #: Sum of lines as charged (goods only).
    total_amount: Decimal
    paid_amount: Decimal | None = None
    #: Shipping the buyer paid, invoiced as its own line; zero when free for the buyer.
    shipping_cost: Decimal = Decimal(0)
    prices_include_tax: bool = True
    buyer: BuyerIdentity
    payments: list[Payment] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    #: The marketplace suspects fraud: the order waits for a person instead of an invoice.
    fraud_suspected: bool = False


class Notification(_Model):
    """A verified webhook, reduced to what the product needs to act on it."""

    connector: str
    topic: str
    resource: str
    account_id: str
    dedupe_key: str
    #: The order this is about, when the topic is one the product handles.
    order_id: str | None = None
    #: Set when the notification is valid but not something the product acts on.
    ignore_reason: str | None = None
    received_at: datetime | None = None
    attempts: int = 1


class TokenSet(_Model):
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    #: None: the token never expires (an offline token); it is never refreshed.
    expires_at: datetime | None
    account_id: str
    scope: str | None = None


class AuthorizationRequest(_Model):
    url: str
    state: str
    code_verifier: str


class AccountProfile(_Model):
    account_id: str
    nickname: str | None = None
    site: str | None = None


# --- ERP side --------------------------------------------------------------------------


class RateBudget(_Model):
    """At most ``requests`` calls to one account in any ``window_seconds``."""

    requests: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class ErpCredentials(_Model):
    username: str
    access_key: SecretStr
    #: The company's request budget, resolved by the product from its connection (the
    #: connector's :meth:`~connectors.base.ErpConnector.rate_budget`); None: the
    #: connector's default.
    budget: RateBudget | None = None


class ErpSession(_Model):
    access_token: SecretStr
    expires_at: datetime


class CustomerSpec(_Model):
    """A customer as the ERP needs it, already mapped (id type is the ERP's code)."""

    id_type: str
    identification: str
    person_type: Literal["person", "company"]
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Address | None = None
    city_code: str | None = None
    state_code: str | None = None
    country_code: str = "CO"


class CustomerRef(_Model):
    id: str
    identification: str
    created: bool = False


class Product(_Model):
    id: str
    code: str
    name: str
    active: bool
    tax_ids: list[str] = Field(default_factory=list)


class InvoiceItem(_Model):
    code: str
    description: str
    quantity: Decimal
    #: Unit price before tax, up to 6 decimals.
    price: Decimal
    discount: Decimal = Decimal(0)
    tax_ids: list[str] = Field(default_factory=list)


class InvoicePayment(_Model):
    payment_type: str
    value: Decimal
    due_date: date | None = None


class InvoiceDraft(_Model):
    document_type: str
    date: date
    customer_identification: str
    customer_branch_office: int = 0
    seller: str | None = None
    cost_center: str | None = None
    observations: str | None = None
    items: list[InvoiceItem]
    payments: list[InvoicePayment]
    send_stamp: bool = False
    send_mail: bool = False
    reference: str | None = None


class Invoice(_Model):
    id: str
    name: str
    number: int | None = None
    date: date
    customer_identification: str
    total: Decimal
    stamp_status: str | None = None
    idempotency_key: str | None = None
    #: True when the ERP answered with a document created earlier under the same key.
    replayed: bool = False
    raw: dict[str, Any] = Field(default_factory=dict)
