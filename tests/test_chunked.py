"""A body sent with Transfer-Encoding: chunked is read and limited like one with a
Content-Length, under a real WSGI server (gunicorn) and a real ASGI server (uvicorn)."""

import contextlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.test_asgi import ASGI, EXAMPLE, WSGI, gunicorn, manage, service_env

SERVERS = {"wsgi": (WSGI, "wsgi"), "asgi": (ASGI, "asgi")}


@pytest.fixture(scope="module")
def shop_env(tmp_path_factory) -> dict[str, str]:
    if connection.vendor != "sqlite":
        pytest.skip("runs in the SQLite pass: the server has a SQLite file of its own")
    path = tmp_path_factory.mktemp("chunked") / "shop.sqlite3"
    env = service_env(f"sqlite:///{path}")
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "seed", "--products", "5", "--seed", "1")
    return env


@pytest.fixture(scope="module")
def staff_token(shop_env) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "drf_create_token", "admin"],
        cwd=EXAMPLE,
        env=shop_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()[2]  # "Generated token <key> for user admin"


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(url: str, path: str, body: bytes, token: str) -> tuple[int, dict]:
    """POST with no Content-Length: http.client sends Transfer-Encoding: chunked."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        # The server may answer a 413 before the whole body is sent: read its answer then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", path, body=chunks(body), headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def get_json(url: str) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@pytest.mark.parametrize("server", SERVERS)
def test_a_chunked_body_is_read_and_a_huge_one_is_413(shop_env, staff_token, server):
    app, mode = SERVERS[server]
    with gunicorn(app, {**shop_env, "SERVER_MODE": mode}, workers=1) as url:
        sku = f"CHUNK-{server}"
        product = {"sku": sku, "name": "Chunked", "price": "5.00", "stock": 3}
        product |= {"brand": 1, "category": 2}
        status, body = post_chunked(
            url, "/api/products/", json.dumps(product).encode(), staff_token
        )
        assert status == 201, body
        assert body["sku"] == sku and body["name"] == "Chunked"
        assert get_json(f"{url}/api/products/{body['id']}/")["sku"] == sku

        huge = json.dumps({**product, "sku": "HUGE", "description": "x" * 10_000_000}).encode()
        status, body = post_chunked(url, "/api/products/", huge, staff_token)
        assert (status, body) == (413, {"detail": "Request body too large."})
        assert get_json(f"{url}/api/products/?page_size=100")["results"][0]["sku"] != "HUGE"
