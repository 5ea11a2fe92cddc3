"""The cluster the replica tests share: a private PostgreSQL primary, seeded with the
reference shop, and a streaming replica of it (``pg_basebackup -R``), on free ports."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults.cluster import PostgresCluster, private_dir, require_binaries, serve_shop
from tests.processes import wait_until

DATABASE = "shop"
TOKEN = "e" * 40  # the seed's staff user "admin"


@dataclass
class Cluster:
    primary: PostgresCluster
    replica: PostgresCluster

    def lsn(self, server: PostgresCluster, sql: str) -> str:
        with server.connect(DATABASE) as conn:
            row = conn.execute(sql).fetchone()
        assert row is not None
        return str(row[0])

    def caught_up(self) -> bool:
        primary = self.lsn(self.primary, "SELECT pg_current_wal_lsn()")
        with self.replica.connect(DATABASE) as conn:
            row = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [primary]
            ).fetchone()
        return bool(row and row[0])

    def ready(self) -> None:
        """The replica running and replaying, caught up (a test that failed may have left
        it stopped or paused)."""
        if not self.replica.running():
            self.replica.start()
        self.resume()

    def pause(self) -> None:
        wait_until(self.caught_up, "the replica to catch up", 30, self.replica.logs)
        with self.replica.connect(DATABASE) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        with self.replica.connect(DATABASE) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        wait_until(self.caught_up, "the replica to catch up", 30, self.replica.logs)

    def replica_lag(self) -> float:
        with self.replica.connect(DATABASE) as conn:
            row = conn.execute(
                "SELECT COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)"
            ).fetchone()
        return float(row[0]) if row else 0.0


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    require_binaries("the replica tests", pgbouncer=False)
    directory = private_dir("primary")
    replica_dir = private_dir("replica")
    primary = PostgresCluster(directory)
    replica = None
    try:
        serve_shop(primary, DATABASE, 40, TOKEN)
        replica = primary.standby(replica_dir)
        yield Cluster(primary, replica)
    finally:
        if replica is not None:
            replica.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(replica_dir, ignore_errors=True)


def call(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    sent = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    prepared = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")
