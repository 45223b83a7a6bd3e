"""The client proper: a thin layer over urllib so it runs anywhere Python does."""

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

from .errors import ConnectionFailed, TroupeError, error_for

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class Job:
    """A job as the server last reported it; fields the server has not filled yet are None."""

    job_id: str
    status: str
    file: Optional[str] = None
    worker: Optional[str] = None
    node: Optional[str] = None
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    error: Optional[str] = None

    @property
    def done(self) -> bool:
        """True once polling can stop: the job either finished or failed for good."""
        return self.status in ("done", "failed")

    @classmethod
    def from_json(cls, body: Dict[str, Any]) -> "Job":
        # Ignore keys we do not know (e.g. the 202 "message") so newer servers keep working.
        return cls(
            job_id=body["job_id"],
            status=body["status"],
            file=body.get("file"),
            worker=body.get("worker"),
            node=body.get("node"),
            created_at=body.get("created_at"),
            updated_at=body.get("updated_at"),
            error=body.get("error"),
        )

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Client:
    """Talks to one troupe edge. Stateless, so one instance can be shared freely."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 60.0):
        # The default timeout outlasts the server's 30 s wait, so submit(wait=True) gets the
        # server's answer (done, or 202 queued) rather than a client-side timeout.
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def submit(self, text: str, wait: bool = False) -> Job:
        """Queue `text` as a job. With wait=True the server holds the request until the job
        finishes; if it does not finish in time the job comes back "queued" or "running", so
        check `job.done` rather than assuming."""
        _, body = self._request("POST", "/jobs", {"text": text, "wait": wait})
        return Job.from_json(body)

    def job(self, job_id: str) -> Job:
        """The job's current state; raises NotFound for an unknown id."""
        _, body = self._request("GET", "/jobs/" + urllib.parse.quote(job_id, safe=""))
        return Job.from_json(body)

    def ready(self) -> bool:
        """Whether the cluster can serve now. False (not an exception) while starting or
        shutting down, or unreachable, because callers use this to poll."""
        try:
            status, _ = self._request("GET", "/readyz")
        except TroupeError:
            return False
        return status == 200

    def _request(
        self, method: str, path: str, payload: Optional[Dict[str, Any]] = None
    ) -> Tuple[int, Dict[str, Any]]:
        data = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            # Non-ASCII text as UTF-8, not \uXXXX escapes: those take 2 to 3 times the bytes,
            # and a text within the server's limit could make a body past its body limit.
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            e.close()
            raise _http_error(e.code, e.reason, raw) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise ConnectionFailed(f"cannot reach {self.base_url}: {reason}") from e


def _decode(raw: bytes) -> Dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TroupeError(f"server sent a non-JSON response: {raw[:200]!r}") from e
    if not isinstance(body, dict):
        raise TroupeError(f"server sent unexpected JSON: {body!r}")
    return body


def _http_error(status: int, reason: Any, raw: bytes):
    """Build the exception from whatever the body holds; proxies and panics may send
    plain text or nothing, and the caller still deserves a readable message."""
    body: Dict[str, Any] = {}
    try:
        parsed = json.loads(raw.decode("utf-8"))
        if isinstance(parsed, dict):
            body = parsed
    except (UnicodeDecodeError, ValueError):
        pass
    message = body.get("error") or body.get("reason")
    if not message:
        text = raw.decode("utf-8", "replace").strip()
        message = text[:500] if text else (str(reason) or f"HTTP {status}")
    field = body.get("field")
    return error_for(status, str(message), field if isinstance(field, str) else None, body)
