"""The connector contract: small typed ABCs, one per side.

A connector is built with an ``httpx.AsyncClient`` owned by the process (never created at
import) and its own config; it holds no per-request state. Every method that calls out
classifies failures into :mod:`connectors.errors` where the call is made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, ClassVar, Literal, Protocol

import httpx
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.documents import ErpDocument, Mappings, PipelineRules
from connectors.models import (
    AccountProfile,
    AuthorizationRequest,
    CustomerRef,
    CustomerSpec,
    ErpCredentials,
    ErpSession,
    Invoice,
    InvoiceDraft,
    Notification,
    Order,
    Product,
    RateBudget,
    TokenSet,
)


@dataclass(frozen=True)
class InboundRequest:
    """What a webhook endpoint hands to a connector to verify and parse."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]
    client_ip: str | None


class MarketplaceConnector(ABC):
    name: ClassVar[str]
    #: The sites (country storefronts) a consent may name, compared without regard to case;
    #: empty for a marketplace without sites, which takes none.
    sites: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def parse_notification(self, request: InboundRequest) -> Notification:
        """Verify and parse a webhook without any network call.

        Raises :class:`~connectors.errors.InvalidNotification` for a body that is malformed
        or fails verification. A valid notification the product does not act on (another
        topic, say) comes back with ``ignore_reason`` set.
        """

    @abstractmethod
    def authorization_request(self, *, state: str, site: str | None = None) -> AuthorizationRequest:
        """The consent URL for ``state``, with a fresh PKCE verifier to keep server-side."""

    @abstractmethod
    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        """Trade an authorization code for tokens."""

    @abstractmethod
    async def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token for a new pair. Refresh tokens may be single-use: the
        caller must persist the returned pair before anything else."""

    @abstractmethod
    async def get_profile(self, access_token: str) -> AccountProfile:
        """Who the token belongs to."""

    @abstractmethod
    async def fetch_order(self, access_token: str, order_id: str) -> Order:
        """The order as it is now, with the buyer's fiscal identity."""

    @abstractmethod
    def search_orders(
        self, access_token: str, account_id: str, updated_from: datetime, updated_to: datetime
    ) -> AsyncIterator[Order]:
        """Every order of ``account_id`` updated in the window, paging to the end."""

    @abstractmethod
    def canonical_order_id(self, external_order_id: str) -> str:
        """The one spelling of an order id; :class:`~connectors.errors.DataError` for text
        that is not an order id of this marketplace.

        Two spellings the marketplace takes for one order ("0123" and "123") must not
        reach the product as two orders: every id the connector hands out (notifications,
        orders) is already in this spelling, and the product compares ids through it."""

    @abstractmethod
    def idempotency_key(self, external_order_id: str) -> str:
        """The deterministic key an ERP document for this order is created under.

        It depends on the order's id alone, so it can be reserved before the order is
        fetched: the run commits it when it claims the order, before any call goes out."""


class RateLimiter(Protocol):
    """One schedule per ``key`` (an account upstream), shared by every worker.

    The product passes a Redis-backed limiter in production and an in-process one when
    embedded; connectors call ``acquire`` before every request to a rate-limited service
    and ``push_back`` when the service refuses one for exceeding its limit anyway.
    """

    async def acquire(self, key: str, budget: RateBudget) -> None:
        """Return when a request under ``key`` may go without exceeding ``budget``."""
        ...

    async def push_back(self, key: str, seconds: float) -> None:
        """Let no request under ``key`` go for ``seconds`` (from now), in every worker:
        those already waiting for a slot wait again."""
        ...


class NoLimit:
    async def acquire(self, key: str, budget: RateBudget) -> None:
        return None

    async def push_back(self, key: str, seconds: float) -> None:
        return None


class ErpConnector(ABC):
    """Every call takes the account's credentials: the connector caches the session token
    per account itself, renews it on expiry and re-authenticates once on a 401."""

    name: ClassVar[str]
    #: The kinds of company the ERP gives different request budgets (a test company may
    #: be allowed fewer calls than a production one), the default first; empty when it
    #: has one budget for all. The merchant names the mode when linking, since an ERP's
    #: API need not say it.
    modes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def rate_budget(self, mode: str | None, requests: int | None = None) -> RateBudget:
        """The request budget of one company in ``mode`` (None: the default mode), with
        ``requests`` per window instead of the mode's own when the connection sets it.

        Raises ``ValueError`` for a mode not in :attr:`modes`.
        """

    @abstractmethod
    def build_document(
        self, order: Order, settings: PipelineRules, mappings: Mappings, invoice_date: date
    ) -> ErpDocument:
        """The order as this ERP's document (customer and invoice draft) dated
        ``invoice_date``, under the pipeline's ``settings`` (an instance of the spec's
        :attr:`ConnectorSpec.pipeline_settings`) and the merchant's ``mappings``.

        Pure (no network call): the connector's money rule, identification types, lines and
        wording. Raises :class:`~connectors.documents.MappingMissing` for what it cannot map
        and :class:`~connectors.documents.BuyerIncomplete` while the buyer's fiscal data is
        not there yet.
        """

    @abstractmethod
    def order_reference(self, invoice: Invoice, marketplace: str) -> str | None:
        """The ``marketplace`` order id a document of this ERP names (as
        :meth:`build_document` wrote it), if any: how a listed document is tied to its
        order when the ERP's list cannot filter on the product's reference."""

    @abstractmethod
    async def authenticate(self, credentials: ErpCredentials) -> ErpSession:
        """Obtain a fresh session token (used to check credentials when linking)."""

    @abstractmethod
    def account_id(self, credentials: ErpCredentials) -> str:
        """The id of the ERP account (company) these credentials act for, as the product
        stores it: one connection per account. Called once the credentials were accepted.
        """

    @abstractmethod
    async def ensure_customer(
        self, credentials: ErpCredentials, customer: CustomerSpec
    ) -> CustomerRef:
        """Find the customer by identification, creating it when missing."""

    @abstractmethod
    async def find_product(self, credentials: ErpCredentials, code: str) -> Product | None:
        """The product with this code, or None."""

    #: True when repeating a create under the same idempotency key returns the document
    #: created first. False for an ERP that ignores keys: the product then looks the
    #: document up (:meth:`find_invoice`) before it creates it again.
    honours_idempotency_key: ClassVar[bool] = True

    @abstractmethod
    async def create_invoice(
        self, credentials: ErpCredentials, draft: InvoiceDraft, idempotency_key: str
    ) -> Invoice:
        """Create the invoice. Where :attr:`honours_idempotency_key`, repeating the call
        with the same key returns the invoice created first instead of a second one; that
        is what makes retries after a timeout safe. Otherwise the document must carry the
        key where :meth:`find_invoice` can find it."""

    async def find_invoice(
        self, credentials: ErpCredentials, idempotency_key: str, draft: InvoiceDraft
    ) -> Invoice | None:
        """The invoice created for ``draft`` under ``idempotency_key``, or None: the ERP's
        own lookup (listing by the marker the key left on it, say). Required of an ERP that
        does not honour idempotency keys; a timeout or a 5xx of the lookup itself raises.
        """
        raise NotImplementedError(f"{self.name} honours idempotency keys: no lookup needed")

    @abstractmethod
    async def get_invoice(self, credentials: ErpCredentials, invoice_id: str) -> Invoice:
        """One invoice by id."""

    @abstractmethod
    def list_invoices(
        self, credentials: ErpCredentials, date_from: date, date_to: date
    ) -> AsyncIterator[Invoice]:
        """Every invoice dated in the range, paging to the end."""


class ConnectorSettings(BaseSettings):
    """A connector's own settings: a subclass sets its ``env_prefix`` (``CONEXAPI_<NAME>_``)
    and declares its base URLs, credentials and limits, each with a ``#:`` comment (the
    configuration reference is generated from them).

    The product reads them with its own settings, from the environment and the same
    ``.env`` file (:attr:`conexapi.settings.Settings.connectors`).
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    #: The fields that point at the upstream service: ``conexapi sandbox`` prints them set
    #: to the connector's sandbox.
    sandbox_urls: ClassVar[tuple[str, ...]] = ()

    #: Where ``conexapi sandbox`` serves this connector's simulator; none: the first free
    #: port from 8101.
    sandbox_port: int | None = None

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable ``field`` is read from."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, str):
            return alias.upper()
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def field_for(cls, key: str) -> str:
        """The key ``key`` (a field name or its alias) is validated under."""
        alias = cls.model_fields[key].validation_alias if key in cls.model_fields else None
        return alias if isinstance(alias, str) else key


@dataclass(frozen=True)
class ConnectorSpec:
    """What a connector package exposes under the ``conexapi.connectors`` entry point."""

    name: str
    kind: Literal["marketplace", "erp"]
    #: ``factory(http, settings, limiter)`` → a connector instance; ``settings`` is the
    #: product's :class:`~conexapi.settings.Settings` (the connector's own settings are
    #: ``settings.connector(name, model)``), ``limiter`` a :class:`RateLimiter`.
    factory: Any
    #: ``sandbox_app()`` → the ASGI app simulating the service.
    sandbox_app: Any
    description: str = ""
    #: The name a person knows the service by (consent pages); the name when empty.
    label: str = ""
    #: For an ERP: the model of the settings a pipeline invoicing into it must carry (with
    #: the fields of :class:`~connectors.documents.PipelineRules`).
    pipeline_settings: type[BaseModel] | None = None
    #: The connector's own settings model (its env prefix, URLs, credentials, limits);
    #: None for a connector without settings.
    settings: type[ConnectorSettings] | None = None
    #: The zone the service counts its days in (invoice dates, the day of a sale); None
    #: for a service with no local calendar.
    time_zone: tzinfo | None = None


def build(
    spec: ConnectorSpec, http: httpx.AsyncClient, settings: Any, limiter: RateLimiter | None = None
) -> Any:
    return spec.factory(http, settings, limiter or NoLimit())
