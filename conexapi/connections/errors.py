"""What can go wrong when linking, using or unlinking a connection."""

from __future__ import annotations

from conexapi.kit.errors import AppError, Conflict, NotFound


class ReauthRequired(Exception):
    """The connection cannot be used until the merchant authorizes it again.

    Its runs wait (they do not fail): linking the account again makes it usable.
    """

    def __init__(self, connection_id: int, reason: str = "needs_reauth") -> None:
        super().__init__(f"connection {connection_id} needs re-authorization ({reason})")
        self.connection_id = connection_id
        self.reason = reason


class ConnectionDisconnected(ReauthRequired):
    """The merchant unlinked the account; its tokens are gone."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(connection_id, "disconnected")


class ConnectionNotFound(NotFound):
    code = "connection_not_found"
    message = "No such connection."


class AccountLinkedElsewhere(Conflict):
    code = "account_linked_to_another_merchant"
    message = (
        "This account is already linked to another merchant. Unlink it there first, "
        "or sign in with a different account."
    )


class UnknownConnector(NotFound):
    code = "unknown_connector"
    message = "No such connector."


class ReturnToNotAllowed(AppError):
    code = "return_to_not_allowed"
    status_code = 400
    message = "return_to must be an http(s) URL on one of the allowed origins."


class CredentialsRejected(AppError):
    code = "credentials_rejected"
    status_code = 400
    message = "The service rejected these credentials."


class InvalidRateSettings(AppError):
    code = "invalid_rate_settings"
    status_code = 400
    message = "These request-budget settings do not apply to this connection."


class UpstreamUnavailable(AppError):
    code = "upstream_unavailable"
    status_code = 502
    message = "The service could not be reached; try again in a moment."
