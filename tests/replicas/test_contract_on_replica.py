"""The contract suite (tests/test_contract.py) over HTTP, its reads served by the replica.

The contract's catalog (``tests.factories.make_catalog``) is written to a database of its own
on the private primary, streamed to the replica, and read through the reference service
started with ``REPLICA_URLS``. The contract's tests run unchanged against an HTTP client that
answers as Django's test client does (``Host: testserver``); the two that need the test
process itself (its database, ``response.timing``) stay in the in-process suite. The module
checks at the end that the replica served the reads (the primary only /floor/'s raw SQL,
which runs on ``django.db.connection``, past any router, and the WAL positions the cache
compares a replica with), /api/'s lists written in SQL (``render_in_database``) included.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drf_scale import sqljson as sql_json
from tests.faults.cluster import Service
from tests.processes import wait_until
from tests.test_asgi import EXAMPLE, manage, service_env
from tests.test_cache_outage import RedisServer
from tests.test_contract import (  # noqa: F401  the contract's tests, collected here too
    test_api_cursor_pages_hold_the_naive_list,
    test_api_first_page_and_count,
    test_detail_is_identical_on_every_router,
    test_list_is_identical_on_page_number_routers,
    test_list_shape,
    test_reference_lists,
    test_review_stats,
    test_unknown_product_is_404,
)

pytestmark = [pytest.mark.postgres, pytest.mark.once]

CONTRACT = "contract"
DUMP = """
import json
from tests.factories import make_catalog
catalog = make_catalog()
print(json.dumps({key: [row.pk for row in rows] for key, rows in catalog.items()}))
"""


class Answer:
    """What Django's test client answers, for the contract's assertions."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content

    def json(self) -> Any:
        return json.loads(self.content)


class HttpClient:
    """``client.get(path)`` over HTTP, as the test server ``testserver``."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Answer:
        url = self.base + path.removeprefix("http://testserver")
        request = urllib.request.Request(url, headers={"Host": "testserver"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())


def commits(server: Any) -> int:
    with server.connect(CONTRACT) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [CONTRACT]
        ).fetchone()
    return int(row[0]) if row else 0


def sessions(server: Any) -> int:
    """Other sessions on the contract's database."""
    with server.connect(CONTRACT) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [CONTRACT],
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def contract(cluster, tmp_path_factory) -> Iterator[tuple[str, dict[str, list[Any]]]]:
    """The service on the contract's catalog, its reads on the replica; the catalog's ids."""
    cluster.ready()
    cluster.primary.create_database(CONTRACT)
    with cluster.primary.connect(CONTRACT) as conn:  # a catalog setting: the replica logs too
        conn.execute(f"ALTER DATABASE {CONTRACT} SET log_min_duration_statement = 0")
    env = service_env(cluster.primary.url(CONTRACT), SERVER_MODE="wsgi")
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):  # never the shared services
        env.pop(name, None)
    env["PYTHONPATH"] = str(EXAMPLE.parent)  # tests.factories
    manage(env, "migrate", "--noinput", "-v", "0")
    ids = json.loads(manage(env, "shell", "-v", "0", "-c", DUMP).strip().splitlines()[-1])
    catalog = {key: [SimpleNamespace(id=pk) for pk in pks] for key, pks in ids.items()}
    wait_until(cluster.caught_up, "the replica to replay the catalog", 30, cluster.replica.logs)
    directory = tmp_path_factory.mktemp("contract")
    redis = RedisServer(directory, persistent=False)
    redis.start()
    try:
        with Service(
            Path(directory), cluster.primary.url(CONTRACT), DB_MODE="direct",
            REDIS_URL=redis.url, REPLICA_URLS=cluster.replica.url(CONTRACT),
        ) as service:  # fmt: skip
            served = {name: commits(getattr(cluster, name)) for name in ("primary", "replica")}
            yield service.url, catalog
        # A backend reports its commits about once a second, and all of them as it exits.
        for server in (cluster.primary, cluster.replica):
            wait_until(lambda s=server: not sessions(s), "the service's sessions to end", 30)
        replica = commits(cluster.replica) - served["replica"]
        primary = commits(cluster.primary) - served["primary"]
        # The primary: /floor/'s hand-written SQL, on django.db.connection (no router),
        # and the WAL position a cached list or a cache miss on the replica reads there.
        assert replica > 100 and replica > 5 * primary, (replica, primary)
        # /api/ lists render in the database (render_in_database): on the replica.
        assert sql_json.JSON_COLUMN in cluster.replica.log.read_text(errors="replace")
    finally:
        redis.terminate()


@pytest.fixture
def client(contract) -> HttpClient:
    return HttpClient(contract[0])


@pytest.fixture
def catalog(contract) -> dict[str, list[Any]]:
    return contract[1]
