"""PgBouncer in transaction mode (.ci/pgbouncer.sh): a few server connections, many clients.

``make test-pgbouncer`` runs the PostgreSQL tests with the default database behind it
(DB_MODE=pgbouncer); these tests check the pooler itself and that the pass goes through it.
"""

import socket
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection

from tests.services import PORTS, in_ci, reachable
from tests.test_asgi import ASGI, Peak, get, gunicorn, service_env

pytestmark = pytest.mark.postgres
MAX_SERVER_CONNECTIONS = 20


@pytest.fixture(scope="module")
def pgbouncer() -> tuple[str, int]:
    if not reachable("pgbouncer"):
        message = "PgBouncer not reachable on 127.0.0.1:6432 (run .ci/pgbouncer.sh)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return PORTS["pgbouncer"]


def admin(command: str) -> list[dict]:
    """Rows of a PgBouncer admin console command (simple query protocol only)."""
    host, port = PORTS["pgbouncer"]
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="pgbouncer", autocommit=True,
        cursor_factory=psycopg.ClientCursor,
    ) as conn:  # fmt: skip
        cursor = conn.execute(command)
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def server_connections(database: str) -> int:
    states = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
    return sum(
        sum(pool[state] for state in states)
        for pool in admin("SHOW POOLS")
        if pool["database"] == database
    )


def test_pgbouncer_runs_transaction_mode_with_20_server_connections(pgbouncer):
    config = {row["key"]: row["value"] for row in admin("SHOW CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert int(config["max_user_connections"]) == MAX_SERVER_CONNECTIONS


def test_many_clients_share_20_server_connections(pgbouncer):
    host, port = pgbouncer

    def client(_: int) -> int:
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres") as conn:
            for _ in range(3):
                with conn.transaction():
                    conn.execute("SELECT pg_sleep(0.05)")
            return 1

    with (
        Peak(lambda: server_connections("postgres")) as peak,
        ThreadPoolExecutor(max_workers=100) as pool,
    ):
        done = sum(pool.map(client, range(100)))
    assert done == 100
    assert 0 < peak.value <= MAX_SERVER_CONNECTIONS


def local_port(conn: psycopg.Connection) -> int:
    with socket.socket(fileno=conn.fileno()) as sock:
        try:
            return sock.getsockname()[1]
        finally:
            sock.detach()  # the connection keeps its socket


@pytest.mark.django_db
def test_this_pass_goes_through_pgbouncer(pgbouncer):
    if connection.settings_dict.get("DRF_SCALE_MODE") != "pgbouncer":
        pytest.skip("runs in the PgBouncer pass (make test-pgbouncer)")
    connection.ensure_connection()
    port = local_port(connection.connection)
    assert any(client["port"] == port for client in admin("SHOW CLIENTS"))
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True


@pytest.mark.django_db
def test_asgi_service_through_pgbouncer_under_a_burst(pgbouncer):
    """200 requests, 50 at a time, each in its own thread and connection: no error, and
    never more than 20 server connections."""
    host, port = pgbouncer
    database_name = connection.settings_dict["NAME"]
    url = f"postgres://postgres@{host}:{port}/{database_name}"
    env = service_env(url, DB_MODE="pgbouncer")
    with (
        gunicorn(ASGI, env) as base,
        Peak(lambda: server_connections(database_name)) as peak,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        statuses = list(pool.map(lambda _: get(base + "/api/products/")[0], range(200)))
    assert statuses == [200] * 200
    assert 0 < peak.value <= MAX_SERVER_CONNECTIONS
