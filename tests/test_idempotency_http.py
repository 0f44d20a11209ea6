"""Idempotency-Key over HTTP against the local two-region app (python -m local's launcher).

Both regions share one database, as both DSQL clusters of the deployed pair share their data: a retry
may land in the other region (a failover between the attempts) and must get the first answer there.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from local.launcher import LocalApp, start_local_app

A, B = "idem-a", "idem-b"


def post(url: str, path: str, body: object, key: str) -> tuple[int, dict[str, str], dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=20)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={"Content-Type": "application/json", "Idempotency-Key": f'"{key}"'},
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def local(module_migrated_database_url: str) -> Iterator[LocalApp]:
    with start_local_app(
        make_conninfo(module_migrated_database_url, user="users_api"),
        [(A, 0), (B, 0)],
        containers=4,  # so that concurrent retries run at the same time in each region
        env={"AUTH_MODE": "none"},
    ) as started:
        yield started


def users_with_email(url: str, email: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM users WHERE email = %s", (email,)).fetchone()[0]  # type: ignore[index]


def test_a_retried_create_gets_the_first_answer_in_both_regions(
    local: LocalApp, module_migrated_database_url: str
) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Ann", "email": f"ann-{key[:8]}@example.com"}
    status, headers, first = post(local.urls[A], "/users", body, key)
    assert status == 201
    for region in (A, B):
        again_status, again_headers, again = post(local.urls[region], "/users", body, key)
        assert (again_status, again) == (201, first), region
        assert again_headers["Location"] == headers["Location"]
        assert again_headers["Idempotent-Replayed"] == "true"
    assert users_with_email(module_migrated_database_url, body["email"]) == 1


def test_eight_concurrent_retries_make_one_user_and_a_later_retry_replays_its_201(
    local: LocalApp, module_migrated_database_url: str
) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Rush", "email": f"rush-{key[:8]}@example.com"}
    start = threading.Barrier(8)
    answers: list[tuple[int, dict[str, str], dict]] = []
    lock = threading.Lock()

    def retry(region: str) -> None:
        start.wait()
        answer = post(local.urls[region], "/users", body, key)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=retry, args=((A, B)[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8
    created = [answer for status, _, answer in answers if status == 201]
    in_flight = [
        answer for status, headers, answer in answers if status == 409 and headers.get("Retry-After")
    ]
    assert len(created) + len(in_flight) == 8, answers
    assert created, answers
    assert all(answer == created[0] for answer in created)
    assert all(answer["error"]["code"] == "request_in_flight" for answer in in_flight)
    assert users_with_email(module_migrated_database_url, body["email"]) == 1
    status, headers, replayed = post(local.urls[B], "/users", body, key)
    assert (status, replayed, headers["Idempotent-Replayed"]) == (201, created[0], "true")


def test_the_same_key_with_another_body_is_refused(
    local: LocalApp, module_migrated_database_url: str
) -> None:
    key = str(uuid.uuid4())
    first = {"name": "Ann", "email": f"first-{key[:8]}@example.com"}
    other = {"name": "Ann", "email": f"other-{key[:8]}@example.com"}
    assert post(local.urls[A], "/users", first, key)[0] == 201
    status, _, refused = post(local.urls[B], "/users", other, key)
    assert status == 422 and refused["error"]["code"] == "idempotency_key_reused"
    assert users_with_email(module_migrated_database_url, other["email"]) == 0
