"""Exceptions, split by status so callers can catch what they can act on."""

from typing import Any, Dict, Optional


class TroupeError(Exception):
    """Root of everything this client raises, so one `except` covers it all."""


class ConnectionFailed(TroupeError):
    """The server could not be reached at all (as opposed to answering with an error)."""


class HTTPError(TroupeError):
    """The server answered with an error status.

    `message` and `field` come from the body the relay sends (`{"error", "field"}`), so a
    caller can point at the offending input instead of parsing text.
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: Optional[str] = None,
        body: Optional[Dict[str, Any]] = None,
    ):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.field = field
        self.body = body if body is not None else {}


class BadRequest(HTTPError):
    """400: retrying the same request will not help; fix `field`."""


class NotFound(HTTPError):
    """404: no such job (ids are never reused, so this is final)."""


class PayloadTooLarge(HTTPError):
    """413: the text is over the server's limit (1 MiB by default)."""


class Unavailable(HTTPError):
    """503: the cluster cannot serve right now or is shutting down; worth retrying later."""


_BY_STATUS = {400: BadRequest, 404: NotFound, 413: PayloadTooLarge, 503: Unavailable}


def error_for(status: int, message: str, field: Optional[str], body: Dict[str, Any]) -> HTTPError:
    """Pick the most specific class so callers need not compare status codes."""
    return _BY_STATUS.get(status, HTTPError)(status, message, field, body)
