"""JSON bodies are bounded: size (413) and nesting depth (400), through the real API.

A body is refused from its Content-Length before a byte of it is read, and again while it is
read (a Content-Length that lies, or a stream longer than announced). Nothing is created.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection
from pytest_django import Settings
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import APIException
from rest_framework.test import APIClient

from misis.parsers import BoundedJSONParser, json_depth
from scenarios.models import Scenario
from tests.factories import make_scenario
from tests.gunicorn_server import gunicorn

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def padded(body: dict[str, Any], size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes: the body, then trailing whitespace."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


def post_raw(client: APIClient, url: str, body: bytes) -> Any:
    # DRF's stub types `data` as str; Django's RequestFactory.generic takes bytes as they are.
    return client.generic("POST", url, body, content_type="application/json")  # type: ignore[arg-type]


def test_a_body_over_the_limit_is_413_and_creates_nothing(
    api: APIClient, settings: Settings
) -> None:
    assert settings.MISIS_JSON_MAX_BYTES == MIB  # the default
    body = padded({"source": "short.mp4"}, 2 * MIB)

    resp = post_raw(api, "/scenario/", body)

    assert resp.status_code == 413, resp.content
    assert resp["Content-Type"] == "application/json"
    assert "detail" in resp.json() and str(MIB) in resp.json()["detail"]
    assert Scenario.objects.count() == 0
    # The same body within the limit is a scenario: the refusal was the size, nothing else.
    settings.MISIS_JSON_MAX_BYTES = 3 * MIB
    assert post_raw(api, "/scenario/", body).status_code == 201
    assert Scenario.objects.count() == 1


def test_a_body_at_the_limit_is_taken(api: APIClient, settings: Settings) -> None:
    settings.MISIS_JSON_MAX_BYTES = 4096
    assert post_raw(api, "/scenario/", padded({"source": "short.mp4"}, 4096)).status_code == 201
    resp = post_raw(api, "/scenario/", padded({"source": "short.mp4"}, 4097))
    assert resp.status_code == 413
    assert Scenario.objects.count() == 1


def test_a_command_body_over_the_limit_is_413(
    api: APIClient, user: User, settings: Settings
) -> None:
    settings.MISIS_JSON_MAX_BYTES = 1024
    scenario = make_scenario(owner=user)
    resp = post_raw(api, f"/scenario/{scenario.pk}/", padded({"status": "init_shutdown"}, 2048))
    assert resp.status_code == 413, resp.content
    scenario.refresh_from_db()
    assert scenario.status == "init_startup"


def test_a_lying_content_length_is_caught_while_reading(settings: Settings) -> None:
    """The parser reads at most the limit + 1 bytes, whatever Content-Length says."""
    settings.MISIS_JSON_MAX_BYTES = 1024
    stream = io.BytesIO(padded({"source": "short.mp4"}, 50 * 1024))

    class Req:  # what the parser reads from a request whose Content-Length said 10
        META = {"CONTENT_LENGTH": "10"}

    with pytest.raises(APIException) as refused:
        BoundedJSONParser().parse(stream, "application/json", {"request": Req()})
    assert refused.value.status_code == 413
    assert stream.tell() <= 1025  # the rest was never read


def test_deep_nesting_is_400_with_a_clear_message(api: APIClient) -> None:
    for body in ("[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1"):
        resp = post_raw(api, "/scenario/", body.encode())
        assert resp.status_code == 400, resp.content[:200]
        assert "nested deeper than 32" in resp.json()["detail"], resp.json()
    params: dict[str, Any] = {"source": "short.mp4", "params": {"classes": [[[[[[["x"]]]]]]]}}
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    params["params"]["classes"] = deep
    resp = api.post("/scenario/", params, format="json")
    assert resp.status_code == 400
    assert "nested deeper than 32" in resp.json()["detail"], resp.json()
    assert Scenario.objects.count() == 0


def test_nesting_within_the_limit_and_brackets_in_strings_are_fine(api: APIClient) -> None:
    name = "[[[[{{{{" * 100 + '"\\"[' * 10  # brackets and escaped quotes inside a string
    resp = api.post("/scenario/", {"source": "short.mp4", "name": name[:200]}, format="json")
    assert resp.status_code == 201, resp.content
    assert json_depth(b'{"a": [[1, 2], {"b": "]]]]"}]}') == 3
    assert json_depth(b'"[[[\\"[[["') == 0
    assert json_depth(b"[" * 32 + b"]" * 32) == 32


def test_not_json_is_still_400(api: APIClient) -> None:
    resp = post_raw(api, "/scenario/", b"{not json")
    assert resp.status_code == 400
    assert Scenario.objects.count() == 0


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response: its headers, then as many body bytes as its Content-Length says."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_huge_claimed_length_is_refused_from_the_headers(live_server: Any, user: User) -> None:
    """Past what the server would read and throw away, the refusal comes from the headers
    alone: the client gets its 413 without sending the body."""
    key = Token.objects.get_or_create(user=user)[0].key
    parts = urlsplit(live_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /scenario/ HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Token {key}\r\nContent-Length: {2 * 1024 * MIB}\r\n\r\n".encode()
            + b'{"source": "short.mp4"'
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than" in answer
    assert Scenario.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_client_that_sends_all_20_mib_before_reading_gets_the_413(
    user: User, tmp_path: Path
) -> None:
    """A plain client (no Expect: 100-continue) writes the whole body, then reads. gunicorn
    closes a connection whose body the app left unread, so such a client would see a broken
    pipe or a reset; the parser discards a body of a bounded size instead, and the client
    reads its 413."""
    key = Token.objects.get_or_create(user=user)[0].key
    database = connection.settings_dict["NAME"]
    url = f"postgres://postgres@127.0.0.1:5432/{database}"
    with gunicorn(tmp_path / "gunicorn.log", DATABASE_URL=url) as base:
        parts = urlsplit(base)
        size = 20 * MIB
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
            sock.sendall(
                b"POST /scenario/ HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\n"
                + f"Authorization: Token {key}\r\nContent-Length: {size}\r\n\r\n".encode()
            )
            chunk = b" " * (256 * 1024)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than" in answer
    assert Scenario.objects.count() == 0
