"""Python client for troupe's job relay (`POST /jobs`, `GET /jobs/{id}`, `GET /readyz`)."""

from .client import DEFAULT_URL, Client, Job
from .errors import (
    BadRequest,
    ConnectionFailed,
    HTTPError,
    NotFound,
    PayloadTooLarge,
    TroupeError,
    Unavailable,
)

__all__ = [
    "DEFAULT_URL",
    "Client",
    "Job",
    "TroupeError",
    "HTTPError",
    "BadRequest",
    "NotFound",
    "PayloadTooLarge",
    "Unavailable",
    "ConnectionFailed",
]
