"""Error mapping for answers the cluster does not normally give (proxies, crashes), served by a
stub so they can be produced on demand."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from troupe_client import Client, HTTPError, TroupeError, Unavailable

ANSWERS = {
    "/jobs/plain": (502, "text/plain", b"Bad Gateway from the proxy"),
    "/jobs/empty": (500, "text/plain", b""),
    "/jobs/busy": (503, "application/json", b'{"error": "job service unavailable: x"}'),
    "/jobs/garbage": (200, "text/html", b"<html>not json</html>"),
    "/readyz": (503, "application/json", b'{"status": "not ready", "reason": "shutting down"}'),
}


class Stub(BaseHTTPRequestHandler):
    def do_GET(self):
        status, ctype, body = ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Client(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
    server.shutdown()
    server.server_close()


def test_plain_text_error_body_becomes_the_message(stub):
    with pytest.raises(HTTPError) as e:
        stub.job("plain")
    assert type(e.value) is HTTPError
    assert e.value.status == 502
    assert e.value.message == "Bad Gateway from the proxy"
    assert e.value.field is None and e.value.body == {}


def test_empty_error_body_falls_back_to_the_reason(stub):
    with pytest.raises(HTTPError) as e:
        stub.job("empty")
    assert e.value.status == 500
    assert e.value.message == "Internal Server Error"


def test_503_is_unavailable(stub):
    with pytest.raises(Unavailable) as e:
        stub.job("busy")
    assert e.value.message == "job service unavailable: x"


def test_non_json_success_is_a_troupe_error(stub):
    with pytest.raises(TroupeError, match="non-JSON"):
        stub.job("garbage")


def test_not_ready_is_false(stub):
    assert stub.ready() is False
