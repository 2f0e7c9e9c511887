"""JSON bodies are bounded: size (413) and nesting depth (400), through the real API.

A body is refused from its Content-Length before a byte of it is read, and again while it is
read (a Content-Length that lies, or a stream longer than announced). Nothing is created.
"""

from __future__ import annotations

import io
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import APIException
from rest_framework.test import APIClient

from misis.parsers import BoundedJSONParser, json_depth
from scenarios.models import Scenario
from tests.factories import make_scenario

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def padded(body: dict[str, Any], size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes: the body, then trailing whitespace."""
    raw = json.dumps(body).encode()
    return raw + b" " * (size - len(raw))


def post_raw(client: APIClient, url: str, body: bytes) -> Any:
    return client.generic("POST", url, body, content_type="application/json")


def test_a_body_over_the_limit_is_413_and_creates_nothing(api: APIClient, settings: Any) -> None:
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


def test_a_body_at_the_limit_is_taken(api: APIClient, settings: Any) -> None:
    settings.MISIS_JSON_MAX_BYTES = 4096
    assert post_raw(api, "/scenario/", padded({"source": "short.mp4"}, 4096)).status_code == 201
    resp = post_raw(api, "/scenario/", padded({"source": "short.mp4"}, 4097))
    assert resp.status_code == 413
    assert Scenario.objects.count() == 1


def test_a_command_body_over_the_limit_is_413(api: APIClient, user: object, settings: Any) -> None:
    settings.MISIS_JSON_MAX_BYTES = 1024
    scenario = make_scenario(owner=user)
    resp = post_raw(api, f"/scenario/{scenario.pk}/", padded({"status": "init_shutdown"}, 2048))
    assert resp.status_code == 413, resp.content
    scenario.refresh_from_db()
    assert scenario.status == "init_startup"


def test_a_lying_content_length_is_caught_while_reading(settings: Any) -> None:
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
    params = {"source": "short.mp4", "params": {"classes": [[[[[[["x"]]]]]]]}}
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


def test_a_big_body_over_a_real_socket_gets_a_clean_413(live_server: Any, user: object) -> None:
    """The refusal comes from the headers: the 20 MIB body is never read, yet the client gets
    an answer rather than a dropped connection."""
    key = Token.objects.get_or_create(user=user)[0].key
    parts = urlsplit(live_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /scenario/ HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Token {key}\r\nContent-Length: {20 * MIB}\r\n\r\n".encode()
            + b'{"source": "short.mp4"'
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert Scenario.objects.count() == 0
