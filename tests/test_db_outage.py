"""A database that cannot be reached is a 503 with Retry-After and a JSON body, never a 500.

The service runs under gunicorn against a PostgreSQL address where nothing listens (the server
is down): connections are refused, as they are while PostgreSQL or PgBouncer restarts.
"""

import json
import socket

import pytest
from django.db import connection

from tests.test_asgi import get, gunicorn, service_env


def refused_database_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgres://postgres@127.0.0.1:{port}/shop"


def test_reads_and_writes_are_503_while_the_database_is_unreachable():
    if connection.vendor != "sqlite":
        pytest.skip("runs in the SQLite pass: the service needs no database of the suite's")
    env = service_env(refused_database_url(), SERVER_MODE="wsgi")
    with gunicorn(["example.wsgi"], env, workers=1) as url:
        for path in ("/api/products/", "/api/products/1/", "/naive/products/", "/api/brands/"):
            status, headers, body = get(url + path)
            assert status == 503, (path, status, body[:300])
            assert headers["Retry-After"] == "1"
            assert json.loads(body) == {"detail": "The database is unavailable. Retry shortly."}
