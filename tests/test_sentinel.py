"""The representation cache through Redis Sentinel: a redis+sentinel:// CACHE_URL.

Each test starts its own master, replica and three Sentinels (quorum 2) on free ports; then
the store reads and writes through them, survives a failover whose promoted replica missed an
acknowledged invalidation (its new run_id renews the epoch: the entry it kept is never
served), and answers Unavailable within its socket timeouts when every Sentinel hangs.
Skipped without ``redis-server`` (failed without it under CI=true); a bad URL is a settings
error either way.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.test import APIClient

from drf_scale.cache.redis_store import RedisStore
from drf_scale.cache.store import Entry, Lease, Unavailable, epoch_key, get_store, object_key
from drf_scale.cache.views import RepresentationCache
from drf_scale.checks import check_settings
from drf_scale.redis_urls import parse_sentinel_url
from shop.api_serializers import ProductDetailSerializer
from tests.processes import ManagedProcess, wait_until
from tests.test_cache_outage import (
    FAILURES,
    RedisServer,
    cached_product,
    free_port,
    get,
    read_until_hit,
    store_at,
)

SERVICE = "cache"
SOCKET_TIMEOUT = 0.2
HANG_GUARD = 30.0  # seconds: only a hang takes this long
LABEL, FIELD = "shop.product", "sentinel-test"


class SentinelServer(ManagedProcess):
    """``redis-server <conf> --sentinel`` watching the master of SERVICE, on a free port."""

    def __init__(self, binary: str, directory: Path, master_port: int) -> None:
        self.port = free_port()
        self.log = directory / "sentinel.log"
        self.conf = directory / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\nlogfile {self.log}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 2000\n"
        )
        self.process = subprocess.Popen(
            [binary, str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.raw = redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def sees(self, master_port: int) -> bool:
        """It names ``master_port`` the master, with a replica and both other Sentinels."""
        try:
            state = self.raw.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        known = (state["port"], state["num-slaves"], state["num-other-sentinels"])
        return known == (master_port, 1, 2) and state["is_master"] and not state["is_sdown"]

    def master_port(self) -> int | None:
        try:
            return self.raw.sentinel_get_master_addr_by_name(SERVICE)[1]
        except (redis.RedisError, TypeError):
            return None


@dataclass
class Cluster:
    master: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def log(self) -> str:
        return "\n".join(s.log.read_text() for s in self.sentinels if s.log.exists())


def replicating(replica: RedisServer) -> bool:
    return replica.raw().info("replication").get("master_link_status") == "up"


@pytest.fixture
def cluster(redis_server_binary, tmp_path) -> Iterator[Cluster]:
    """A master, its replica and three Sentinels that know them and each other."""
    for name in ("master", "replica", "sentinel0", "sentinel1", "sentinel2"):
        (tmp_path / name).mkdir()
    master = RedisServer(tmp_path / "master", persistent=False)
    replica = RedisServer(tmp_path / "replica", persistent=False)
    started: list[ManagedProcess] = [master, replica]
    try:
        master.start()
        replica.start()
        master.raw().config_set("repl-diskless-sync-delay", 0)
        replica.raw().replicaof("127.0.0.1", master.port)
        wait_until(lambda: replicating(replica), "the replica to sync", log=replica.log.read_text)
        sentinels: list[SentinelServer] = []
        for i in range(3):
            sentinels.append(
                SentinelServer(redis_server_binary, tmp_path / f"sentinel{i}", master.port)
            )
            started.append(sentinels[-1])
        found = Cluster(master, replica, sentinels)
        wait_until(
            lambda: all(s.sees(master.port) for s in sentinels),
            "the Sentinels to know the replica and each other",
            timeout=30,
            log=found.log,
        )
        yield found
    finally:
        for process in started:
            process.terminate()


@pytest.fixture
def store(cluster) -> Iterator[RedisStore]:
    """The process's store on the Sentinel URL: not yet connected."""
    with store_at(cluster.url, SOCKET_TIMEOUT) as found:
        yield found


def test_the_store_reads_and_writes_the_master_sentinel_names(cluster, store):
    (lease,) = store.read(LABEL, [1], FIELD, lease_ms=1000)
    assert isinstance(lease, Lease) and lease.token  # a miss
    store.write(LABEL, FIELD, [(1, lease, Entry("etag", b'{"id":1}'))])
    assert store.read(LABEL, [1], FIELD, lease_ms=1000) == [Entry("etag", b'{"id":1}')]
    assert asyncio.run(store.apeek(LABEL, [1], FIELD)) == [Entry("etag", b'{"id":1}')]
    assert cluster.master.raw().exists(object_key(LABEL, 1))
    wait_until(lambda: cluster.replica.raw().exists(object_key(LABEL, 1)), "replication")


@pytest.mark.parametrize("first_reader", ["view", "async peek"])
@pytest.mark.django_db(transaction=True)  # invalidations run on commit
def test_a_failover_never_serves_what_the_promoted_replica_missed(cluster, store, first_reader):
    """The promoted replica keeps an entry whose invalidation the master acknowledged. The
    first to read it is another process that saw no outage (no breaker opened, nothing lost):
    only the new master's run_id, checked as its connection opens, renews the epoch."""
    master, replica = cluster.master, cluster.replica
    client = APIClient()
    detail, product = cached_product(client, master)
    cache = RepresentationCache(ProductDetailSerializer, "public")  # the detail's entries
    [cached] = asyncio.run(store.apeek(cache.label, [product.pk], cache.field))
    assert isinstance(cached, Entry)
    entry = object_key(cache.label, product.pk)
    old_name, old_epoch = product.name, master.raw().get(epoch_key())
    wait_until(lambda: replica.raw().exists(entry), "the entry to reach the replica")

    # The replica misses an acknowledged invalidation: hung and cut off before the write.
    replica.hang()
    assert master.raw().client_kill_filter(_type="replica") == 1
    product.name = "Renamed before the failover"
    product.save()
    assert not master.raw().exists(entry)  # the master took the invalidation
    expected = get(client, detail).json()
    assert expected["name"] == product.name

    killed = time.monotonic()
    master.crash()
    replica.resume()
    for _ in range(FAILURES):  # the store fails fast, then its breaker opens
        with pytest.raises(Unavailable):
            store.read(LABEL, [1], FIELD, lease_ms=0)
    assert not store.breaker.allows()
    wait_until(
        lambda: all(s.master_port() == replica.port for s in cluster.sentinels),
        "Sentinel to promote the replica",
        timeout=30,
        log=cluster.log,
    )
    promoted = time.monotonic() - killed
    # The new master holds the entry of before the rename, in the epoch it was stored in.
    kept = replica.raw().hgetall(entry)
    assert any(old_name.encode() in value for value in kept.values()), kept
    assert replica.raw().get(epoch_key()) == old_epoch

    with override_settings(DRF_SCALE={**settings.DRF_SCALE}):  # another process's store
        if first_reader == "async peek":
            peeked = asyncio.run(get_store().apeek(cache.label, [product.pk], cache.field))
            assert peeked == [None]
        read_until_hit(client, detail, expected, "hit")  # never the old name on the way
    assert replica.raw().get(epoch_key()) != old_epoch
    print(
        f"\nfailover: Sentinel promoted the replica {promoted:.2f} s after the master died; "
        f"the detail was a cache hit again after {time.monotonic() - killed:.2f} s"
    )


def test_with_every_sentinel_hung_a_new_connection_is_unavailable_at_once(cluster, store):
    assert store.read(LABEL, [1], FIELD, lease_ms=0) == [Lease("")]  # connected
    for sentinel in cluster.sentinels:
        sentinel.hang()
    # A connection made before keeps serving: Sentinel is asked only for new ones.
    assert store.read(LABEL, [1], FIELD, lease_ms=0) == [Lease("")]

    fresh = RedisStore(cluster.url)  # another process: it must ask a Sentinel
    started = time.monotonic()
    for _ in range(FAILURES + 1):
        with pytest.raises(Unavailable):
            fresh.read(LABEL, [1], FIELD, lease_ms=0)
    elapsed = time.monotonic() - started
    assert not fresh.breaker.allows()
    assert fresh.breaker.errors == FAILURES  # then refused by the breaker, at no cost
    # Each attempt asks every Sentinel once, SOCKET_TIMEOUT each: bounded, never a hang (the
    # guard is generous: speed is not what this asserts).
    assert elapsed < HANG_GUARD, elapsed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://127.0.0.1:26379", "no service name"),
        ("redis+sentinel:///cache", "no host"),
        ("redis+sentinel://127.0.0.1:26379,/cache", "no host"),
        ("redis+sentinel://127.0.0.1:263790/cache", "out of range"),
        ("redis+sentinel://127.0.0.1:26379/cache/zero", "db must be a number"),
        ("redis+sentinel://127.0.0.1:26379/cache?timeout=1", "unknown options"),
    ],
)
def test_a_bad_sentinel_url_is_a_settings_error(url, reason):
    with pytest.raises(ValueError, match=reason):
        parse_sentinel_url(url)
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "CACHE_URL": url}):
        (error,) = check_settings()
        assert error.id == "drf_scale.E061"
        assert "'CACHE_URL'" in error.msg and "redis+sentinel://[:password@]host:port" in error.msg
        with pytest.raises(ImproperlyConfigured, match=r"drf_scale\.E061"):
            get_store()


def test_a_good_sentinel_url_passes_the_check():
    url = "redis+sentinel://:secret@a:26379,b,[::1]:26380/cache/2?sentinel_password=s%21"
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "CACHE_URL": url}):
        assert check_settings() == []
    parsed = parse_sentinel_url(url)
    assert parsed.sentinels == (("a", 26379), ("b", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db, parsed.password) == ("cache", 2, "secret")
    assert parsed.sentinel_password == "s!"
