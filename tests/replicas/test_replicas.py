"""Reads on a real streaming replica (drf_scale.routers), over HTTP, with the reference service.

A private PostgreSQL primary and a replica of it (``pg_basebackup -R``) on free ports, the
service under gunicorn with ``REPLICA_URLS`` and its representation cache on a private Redis.
Replay paused on the replica (``pg_wal_replay_pause()``) makes the lag deterministic: a read
the replica serves shows the data from before the pause, one the primary serves the latest.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import override_settings

from drf_scale.db import replica_config
from drf_scale.routers import Monitor
from tests.faults.cluster import PgBouncer, Service, private_dir, require_binaries
from tests.processes import wait_until
from tests.replicas.conftest import DATABASE, TOKEN, call
from tests.test_cache_outage import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.once]


@contextmanager
def replica_service(cluster, redis, directory, **env: str) -> Iterator[Service]:
    """The service with its reads on the cluster's replica (``env`` added), its cache on
    ``redis``."""
    cluster.ready()
    with Service(
        directory,
        cluster.primary.url(DATABASE),
        DB_MODE="direct",
        REDIS_URL=redis.url,
        REPLICA_URLS=cluster.replica.url(DATABASE),
        **env,
    ) as running:
        yield running
    if cluster.replica.running():
        cluster.resume()


@pytest.fixture
def service(cluster, private_redis, tmp_path) -> Iterator[Service]:
    with replica_service(cluster, private_redis, tmp_path, REPLICA_MAX_LAG="3600") as running:
        yield running


def rename(service: Service, pk: int, name: str) -> str:
    """Rename product ``pk``; the read position the write's response gives."""
    status, headers, body = call(
        f"{service.url}/api/products/{pk}/", "PATCH", {"name": name},
        {"Authorization": f"Token {TOKEN}"},
    )  # fmt: skip
    assert status == 200 and body["name"] == name, (status, body, service.logs())
    assert "drf_scale_read_after=" in headers.get("Set-Cookie", ""), headers
    return headers["X-Read-After"]


def read_name(service: Service, pk: int, position: str | None = None, listing: bool = False) -> str:
    headers = {"X-Read-After": position} if position else {}
    if listing:
        status, _, body = call(f"{service.url}/api/products/?page_size=100", headers=headers)
        assert status == 200, (status, body, service.logs())
        return next(row["name"] for row in body["results"] if row["id"] == pk)
    status, _, body = call(f"{service.url}/api/products/{pk}/", headers=headers)
    assert status == 200, (status, body, service.logs())
    return body["name"]


def products(service: Service) -> list[int]:
    status, _, body = call(f"{service.url}/api/products/?page_size=100")
    assert status == 200, (status, body, service.logs())
    return [row["id"] for row in body["results"]][:5]


def test_writers_read_their_writes_while_replay_is_paused(cluster, service):
    """Per acknowledged write, with replay paused: a reader without a position reads the
    replica (the old name, never stored in the cache), the writer with its position reads
    the new name, detail and list; after replay resumes every reader reads the new names."""
    pks = products(service)
    before = {pk: read_name(service, pk) for pk in pks}
    cluster.pause()
    stale_for_writer, served_by_replica, written = 0, 0, {}
    for round_number in range(3):
        for pk in pks:
            name = f"ryw {round_number} {pk}"
            position = rename(service, pk, name)
            written[pk] = name
            for listing in (False, True):  # no position: the paused replica
                if read_name(service, pk, listing=listing) == before[pk]:
                    served_by_replica += 1
            for listing in (False, True):
                if read_name(service, pk, position, listing) != name:
                    stale_for_writer += 1
    assert stale_for_writer == 0
    assert served_by_replica == 2 * 3 * len(pks)  # every read without a position
    # The paused replica's list carries no ETag: the version it would pair counts the writes.
    status, headers, _ = call(f"{service.url}/api/products/?page_size=100")
    assert status == 200 and "ETag" not in headers, headers
    cluster.resume()
    stale_after = sum(
        read_name(service, pk, listing=listing) != written[pk]
        for pk in pks
        for listing in (False, True)
        for _ in range(3)  # both workers, hits and misses
    )
    assert stale_after == 0  # no representation from the paused replica was cached


def test_the_edge_never_keeps_what_a_replica_behind_a_write_served(
    cluster, private_redis, tmp_path
):
    """With surrogate keys on, a read from a replica that has not replayed the last write
    (detail miss or list) is sent with s-maxage=0 and no keys: an edge would keep it past the
    write's purge. The writer's own reads (the primary) carry their keys."""
    refused = f"http://127.0.0.1:{free_port()}"  # the write's purge fails: it still answers
    with replica_service(
        cluster, private_redis, tmp_path, REPLICA_MAX_LAG="3600", EDGE_PURGE_URLS=refused
    ) as service:
        [pk, *_] = products(service)
        cluster.pause()
        position = rename(service, pk, "behind the replica")
        for url in (f"/api/products/{pk}/", "/api/products/?page_size=100"):
            status, headers, _ = call(f"{service.url}{url}")
            assert status == 200 and "xkey" not in headers, (url, headers)
            assert "s-maxage=0" in headers["Cache-Control"], (url, headers)
        status, headers, _ = call(
            f"{service.url}/api/products/?page_size=100", headers={"X-Read-After": position}
        )
        assert status == 200 and "shop.product:list" in headers["xkey"].split(), headers


@pytest.mark.django_db
def test_a_replica_behind_pgbouncer_is_sampled(cluster):
    """PgBouncer refuses the ``options`` startup parameter: a replica in pgbouncer mode is
    sampled without it (it was skipped on every read)."""
    require_binaries("the replica behind PgBouncer", pgbouncer=True)
    cluster.ready()
    directory = private_dir("replica-pgbouncer")
    bouncer = PgBouncer(directory, cluster.replica.port)
    bouncer.start()
    try:
        replicas = {"behind_pgbouncer": replica_config(bouncer.url(DATABASE), "pgbouncer")}
        with override_settings(DATABASES={**settings.DATABASES, **replicas}):
            sample = Monitor().sample("behind_pgbouncer")
        assert sample.replayed is not None, bouncer.logs()
    finally:
        bouncer.terminate()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_bad_read_position_is_a_400(service):
    status, _, body = call(f"{service.url}/api/products/", headers={"X-Read-After": "nope"})
    assert status == 400
    assert "X-Read-After" in body["detail"]


def test_a_stopped_replica_costs_no_5xx(cluster, service):
    pks = products(service)
    expected = {pk: read_name(service, pk) for pk in pks}
    cluster.replica.stop("immediate")
    statuses = []
    for _ in range(3):
        for pk in pks:
            status, _, body = call(f"{service.url}/api/products/{pk}/")
            statuses.append(status)
            assert status != 200 or body["name"] == expected[pk]
        status, _, _ = call(f"{service.url}/api/products/?page_size=10")
        statuses.append(status)
    assert statuses == [200] * len(statuses), service.logs()


def test_a_replica_lagging_past_the_limit_is_skipped(cluster, private_redis, tmp_path):
    """REPLICA_MAX_LAG 1 s: once the paused replica lags more, readers without a position
    read the primary."""
    with replica_service(cluster, private_redis, tmp_path, REPLICA_MAX_LAG="1") as service:
        [pk, *_] = products(service)
        cluster.pause()
        try:
            rename(service, pk, "lagging 1")
            wait_until(lambda: cluster.replica_lag() > 1.5, "the replica to lag", 30)
            rename(service, pk, "lagging 2")
            assert read_name(service, pk) == "lagging 2"  # the primary's
        finally:
            cluster.resume()


def test_cursor_pages_and_counts_read_the_replica(cluster, service):
    """With replay paused and a product renamed on the primary: a reader without a position
    pages through every product with keyset cursors, each once, with the replica's names,
    and its count (the estimate-or-exact strategy) comes from the replica too."""
    [pk, *_] = products(service)
    before = read_name(service, pk)
    cluster.pause()
    rename(service, pk, "paged on the primary")
    seen: dict[int, str] = {}
    url: str | None = f"{service.url}/api/products/?page_size=7&count=true"
    counts = set()
    while url:
        status, _, body = call(url)
        assert status == 200, (status, body, service.logs())
        counts.add(body.get("count"))
        for row in body["results"]:
            assert row["id"] not in seen
            seen[row["id"]] = row["name"]
        url = body["next"]
    assert len(seen) == 40 and counts == {40}
    assert seen[pk] == before  # the replica's page


def test_a_replica_failing_a_read_is_retried_on_the_primary(cluster, private_redis, tmp_path):
    """Samples kept 10 minutes, so both workers still take the replica for healthy when it
    stops: their reads fail on its closed connections and run again on the primary, sync
    (DRF) and async views alike, with no 5xx."""
    with replica_service(
        cluster, private_redis, tmp_path, REPLICA_SAMPLE_MS="600000", REPRESENTATION_CACHE="off"
    ) as service:
        pks = products(service)
        sync_paths = [f"/api/products/{pks[0]}/", "/api/products/?page_size=5"]
        async_paths = [f"/api/async/products/{pks[0]}/", "/api/async/products/"]
        with ThreadPoolExecutor(4) as pool:  # concurrent: both workers connect to the replica
            warm = list(
                pool.map(lambda path: call(service.url + path)[0], (sync_paths + async_paths) * 6)
            )
            assert warm == [200] * len(warm)
            cluster.replica.stop("immediate")
            try:  # async first: each worker's first read on its closed connection is async
                statuses = list(pool.map(lambda path: call(service.url + path)[0], async_paths * 4))
                statuses += list(pool.map(lambda path: call(service.url + path)[0], sync_paths * 4))
            finally:
                cluster.replica.start()
        assert statuses == [200] * len(statuses), service.logs()
        retried = service.logs(400)
        assert "GET /api/async/products/" in retried and "run again on the primary" in retried
