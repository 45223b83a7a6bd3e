"""A real `troupe up` cluster, started once per test session."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from troupe_client import Client

REPO = Path(__file__).resolve().parents[3]
TROUPE_BIN = Path(os.environ.get("TROUPE_BIN", REPO / "target" / "debug" / "troupe"))
READY_WITHIN = 60.0
STOP_WITHIN = 30.0


@dataclass
class Cluster:
    url: str
    data: Path
    log: Path


def free_port() -> int:
    # Small race between closing and troupe binding, acceptable for tests.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not TROUPE_BIN.is_file():
        pytest.fail(f"troupe binary not found at {TROUPE_BIN}; set TROUPE_BIN")
    tmp = tmp_path_factory.mktemp("troupe")
    data = tmp / "data"
    log = tmp / "troupe.log"
    http, internal = free_port(), free_port()
    # Keep the developer's TROUPE_* settings from changing what we test against.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    cmd = [
        str(TROUPE_BIN), "up", "--nodes", "3",
        "--http", f"127.0.0.1:{http}",
        "--internal-http", f"127.0.0.1:{internal}",
        "--data", str(data),
    ]
    with open(log, "wb") as log_file, open(tmp / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=log_file, env=env)
    url = f"http://127.0.0.1:{http}"
    client = Client(url, timeout=2.0)
    deadline = time.monotonic() + READY_WITHIN
    while not client.ready():
        if proc.poll() is not None:
            pytest.fail(f"troupe up exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"cluster not ready within {READY_WITHIN}s:\n{_tail(log)}")
        time.sleep(0.2)

    yield Cluster(url=url, data=data, log=log)

    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"troupe up did not stop within {STOP_WITHIN}s after SIGINT:\n{_tail(log)}")
    assert code == 0, f"troupe up exited {code} after SIGINT:\n{_tail(log)}"


@pytest.fixture
def closed_url():
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def client(cluster):
    return Client(cluster.url)


@pytest.fixture
def run_cli(cluster):
    """Run the CLI as a user would, in a fresh interpreter, against the test cluster."""
    src = str(Path(__file__).resolve().parents[1])

    def run(*args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        return subprocess.run(
            [sys.executable, "-m", "troupe_client", "--url", cluster.url, *args],
            capture_output=True, text=True, env=env, timeout=90,
        )

    return run
