import json
import time
import uuid

import pytest

from troupe_client import (
    BadRequest,
    Client,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
)

MAX_TEXT = 1024 * 1024


def wait_done(client, job_id, within=30.0):
    deadline = time.monotonic() + within
    while True:
        job = client.job(job_id)
        if job.done or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_ready(client):
    assert client.ready() is True


def test_submit_then_poll_until_done(client, cluster):
    text = f"poll me {uuid.uuid4()}"
    queued = client.submit(text)
    assert queued.status == "queued"
    assert queued.job_id

    job = wait_done(client, queued.job_id)
    assert job.status == "done", job
    assert job.done
    assert job.job_id == queued.job_id
    assert job.file == f"files/{queued.job_id}.txt"
    assert job.worker and job.node
    assert job.error is None
    assert (cluster.data / job.node / job.file).read_text() == text


def test_submit_wait_returns_done_and_writes_file(client, cluster):
    text = f"wait for me {uuid.uuid4()} ✓"
    job = client.submit(text, wait=True)
    assert job.status == "done", job
    assert job.file == f"files/{job.job_id}.txt"
    assert job.worker and job.node and job.created_at and job.updated_at
    assert job.node.startswith("n")
    path = cluster.data / job.node / job.file
    assert path.is_file()
    assert path.read_text(encoding="utf-8") == text
    # The job endpoint agrees with what the wait returned.
    assert client.job(job.job_id) == job


def test_empty_text_is_bad_request(client):
    with pytest.raises(BadRequest) as e:
        client.submit("")
    assert e.value.status == 400
    assert e.value.field == "text"
    assert e.value.message == e.value.body["error"]
    assert "empty" in e.value.message


def test_text_over_limit_is_payload_too_large(client):
    with pytest.raises(PayloadTooLarge) as e:
        client.submit("x" * (MAX_TEXT + 1))
    assert e.value.status == 413
    assert e.value.field == "text"
    assert e.value.message


def test_text_at_limit_is_accepted(client):
    job = client.submit("x" * MAX_TEXT)
    assert job.status == "queued"


def test_non_ascii_text_at_limit_is_written_and_one_byte_more_is_too_large(client, cluster):
    # Two UTF-8 bytes per character: a text of exactly MAX_TEXT bytes. Escaped as \u00e9 it
    # would be a 3 MiB body; sent as UTF-8 it is just over 1 MiB.
    text = "é" * (MAX_TEXT // 2)
    job = client.submit(text)
    assert job.status == "queued"
    job = wait_done(client, job.job_id)
    assert job.status == "done", job
    assert (cluster.data / job.node / job.file).read_text(encoding="utf-8") == text
    with pytest.raises(PayloadTooLarge) as e:
        client.submit(text + "x")
    # The relay's own limit on the text answered, not the edge's limit on bodies.
    assert e.value.field == "text"
    assert "limit" in e.value.message


def test_unknown_job_is_not_found(client):
    job_id = str(uuid.uuid4())
    with pytest.raises(NotFound) as e:
        client.job(job_id)
    assert e.value.status == 404
    assert job_id in e.value.message


def test_closed_port_is_connection_failed(closed_url):
    client = Client(closed_url, timeout=5)
    with pytest.raises(ConnectionFailed):
        client.job("anything")
    assert client.ready() is False


def test_cli_submit_wait(run_cli, cluster):
    result = run_cli("submit", "hello", "--wait")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "done"
    assert job["file"] == f"files/{job['job_id']}.txt"
    assert (cluster.data / job["node"] / job["file"]).read_text() == "hello"


def test_cli_job_shows_existing_job(run_cli, client):
    queued = client.submit("shown by the cli")
    result = run_cli("job", queued.job_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["job_id"] == queued.job_id


def test_cli_unknown_job_exits_1(run_cli):
    job_id = str(uuid.uuid4())
    result = run_cli("job", job_id)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"no job with id {job_id}" in result.stderr


def test_cli_usage_error_exits_2(run_cli):
    result = run_cli("submit")
    assert result.returncode == 2
