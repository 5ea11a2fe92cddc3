"""The representation cache on Redis Cluster (``redis+cluster://``): models spread over the
slots, each model's keys in one slot, and a failover that never serves what the promoted
replica missed. Each test starts 3 masters and 3 replicas of its own on free ports."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from drf_scale.cache.redis_store import RedisStore
from drf_scale.cache.store import (
    Entry,
    Lease,
    Unavailable,
    collection_key,
    epoch_key,
    generation_key,
    get_store,
    object_key,
)
from drf_scale.cache.views import RepresentationCache
from drf_scale.checks import check_settings
from drf_scale.redis_urls import parse_cluster_url
from shop.api_serializers import ProductDetailSerializer
from shop.models import Product
from tests.factories import make_catalog
from tests.processes import wait_until
from tests.test_cache_outage import (
    FAILURES,
    REDIS_SERVER,
    RedisServer,
    free_port,
    get,
    read_until_hit,
    store_at,
)

FIELD = "cluster-test"
LABELS = ("shop.product", "shop.brand", "shop.category", "shop.tag", "shop.review")


@dataclass
class Cluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])  # to start from
        return f"redis+cluster://{hosts}"

    def client(self) -> redis.RedisCluster:
        """A client of the test's own, outside the store under test."""
        return redis.RedisCluster(
            host="127.0.0.1", port=self.nodes[0].port, socket_timeout=2, require_full_coverage=False
        )

    def node_of(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot."""
        return self.by_port(self.client().get_node_from_key(key).port)

    def replica_of(self, master: RedisServer) -> RedisServer:
        port = master.raw().info("replication")["slave0"]["port"]
        return self.by_port(port)

    def by_port(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def healthy(self) -> bool:
        """Every live node sees all 16384 slots served."""
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                info = node.raw().cluster("info")
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok":
                return False
        return True


def cluster_options(directory: str) -> list[str]:
    return [
        "--cluster-enabled", "yes",
        "--cluster-config-file", f"{directory}/nodes.conf",
        "--cluster-node-timeout", "1000",
        "--cluster-port", str(free_port()),  # the bus: not port + 10000, which may not exist
        "--cluster-replica-validity-factor", "0",  # a replica cut off for a while still fails over
    ]  # fmt: skip


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    if REDIS_SERVER is None or shutil.which("redis-cli") is None:
        from tests.services import in_ci

        message = "the Redis Cluster tests need redis-server and redis-cli"
        if in_ci():
            pytest.fail(f"{message} and CI=true")
        pytest.skip(message)
    nodes = []
    try:
        for i in range(6):
            directory = tmp_path / f"node{i}"
            directory.mkdir()
            nodes.append(
                RedisServer(directory, persistent=False, options=cluster_options(str(directory)))
            )
            nodes[-1].start()
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        found = Cluster(nodes)
        wait_until(found.healthy, "the cluster to serve every slot", timeout=30)
        yield found
    finally:
        for node in nodes:
            node.terminate()


def on_replica(node: RedisServer) -> redis.Redis:
    """One connection to a replica that reads its own keys (READONLY), not MOVED."""
    client = redis.Redis(port=node.port, socket_timeout=2, single_connection_client=True)
    client.execute_command("READONLY")
    return client


@pytest.fixture
def store(cluster) -> Iterator[RedisStore]:
    with store_at(cluster.url) as found:
        yield found


def test_a_models_keys_share_one_slot_and_models_spread_over_the_masters(cluster, store):
    client = cluster.client()
    for label in LABELS:
        keys = [
            epoch_key(label), generation_key(label), collection_key(label),
            object_key(label, 1), object_key(label, "a:b"),
        ]  # fmt: skip
        assert len({client.keyslot(key) for key in keys}) == 1, label
    masters = {cluster.node_of(object_key(label, 1)).port for label in LABELS}
    assert len(masters) >= 2  # not one node for everything

    for label in LABELS:
        (lease,) = store.read(label, [1], FIELD, lease_ms=1000)
        assert isinstance(lease, Lease) and lease.token
        assert store.write(label, FIELD, [(1, lease, Entry("etag", b'{"id":1}'))]) == 1
        assert store.read(label, [1], FIELD, lease_ms=1000) == [Entry("etag", b'{"id":1}')]
        assert asyncio.run(store.apeek(label, [1], FIELD)) == [Entry("etag", b'{"id":1}')]
    before = store.version("shop.brand")
    store.invalidate({"shop.brand": {1}, "shop.tag": {1}}, ["shop.review"])
    assert store.version("shop.brand") != before
    for label in ("shop.brand", "shop.tag", "shop.review"):
        assert store.read(label, [1], FIELD, lease_ms=0) == [Lease("")], label
    assert store.read("shop.product", [1], FIELD, lease_ms=0) == [Entry("etag", b'{"id":1}')]


def test_a_lost_invalidation_renews_every_models_epoch(cluster, store):
    for label in ("shop.product", "shop.brand"):
        (lease,) = store.read(label, [1], FIELD, lease_ms=1000)
        store.write(label, FIELD, [(1, lease, Entry("etag", b"{}"))])
    store.lost_invalidation()
    wait_until(lambda: not store.renew_epoch, "the renewal")
    for label in ("shop.product", "shop.brand"):
        assert store.read(label, [1], FIELD, lease_ms=0) == [Lease("")], label


def test_a_cluster_that_does_not_answer_is_unavailable_and_a_lost_invalidation_heals(
    cluster, store
):
    """Every node hung: each operation answers Unavailable (no cluster error reaches the
    caller) and the breaker opens; an invalidation lost meanwhile renews every model's epoch
    once the nodes answer again."""
    (lease,) = store.read("shop.tag", [1], FIELD, lease_ms=1000)
    store.write("shop.tag", FIELD, [(1, lease, Entry("etag", b"{}"))])
    for node in cluster.nodes:
        node.hang()
    try:
        for _ in range(FAILURES):
            with pytest.raises(Unavailable):
                store.read("shop.tag", [1], FIELD, lease_ms=0)
        with pytest.raises(Unavailable):
            store.invalidate({"shop.tag": {1}})
        assert store.renew_epoch
    finally:
        for node in cluster.nodes:
            node.resume()
    wait_until(lambda: not store.renew_epoch, "the epoch renewal after the nodes answer")
    wait_until(store.breaker.allows, "the breaker's cooldown")
    assert store.read("shop.tag", [1], FIELD, lease_ms=0) == [Lease("")]  # orphaned


@pytest.mark.django_db(transaction=True)  # invalidations run on commit
def test_a_failover_never_serves_what_the_promoted_replica_missed(cluster, store):
    """The promoted replica keeps an entry whose invalidation its master acknowledged. The
    first to read it is another process that saw no outage: only the script's check of the
    node's run_id renews the model's epoch."""
    client = APIClient()
    product = make_catalog(products=3)["products"][0]
    detail = f"/api/products/{product.pk}/"
    get(client, detail)
    assert get(client, detail)["X-Cache"] == "hit"
    cache = RepresentationCache(ProductDetailSerializer, "public")
    entry = object_key(cache.label, product.pk)
    master = cluster.node_of(entry)
    replica = cluster.replica_of(master)
    wait_until(lambda: on_replica(replica).exists(entry), "the entry to reach the replica")
    old_epoch = master.raw().get(epoch_key(cache.label))

    replica.hang()  # the replica misses the invalidation: hung, cut off before the write
    assert master.raw().client_kill_filter(_type="replica") == 1
    Product.objects.filter(pk=product.pk).update(name="Renamed before the failover")
    assert not master.raw().exists(entry)  # the master took the invalidation
    expected = get(client, detail).json()
    assert expected["name"] == "Renamed before the failover"

    killed = time.monotonic()
    master.crash()
    replica.resume()
    for _ in range(FAILURES):  # the store fails fast, then its breaker opens
        with pytest.raises(Unavailable):
            store.read(cache.label, [product.pk], cache.field, lease_ms=0)
    wait_until(
        lambda: replica.raw().info("replication")["role"] == "master" and cluster.healthy(),
        "the cluster to promote the replica",
        timeout=30,
    )
    promoted = time.monotonic() - killed
    kept = replica.raw().hgetall(entry)
    assert any(product.name.encode() in value for value in kept.values()), kept
    assert replica.raw().get(epoch_key(cache.label)) == old_epoch

    with override_settings(DRF_SCALE={**settings.DRF_SCALE}):  # another process's store
        assert isinstance(get_store(), RedisStore)
        read_until_hit(client, detail, expected, "hit")  # never the old name on the way
    assert replica.raw().get(epoch_key(cache.label)) != old_epoch
    print(
        f"\ncluster failover: the replica was promoted {promoted:.2f} s after its master died; "
        f"the detail was a cache hit again after {time.monotonic() - killed:.2f} s"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://", "no host"),
        ("redis+cluster://127.0.0.1:7000/0", "nodes only"),
        ("redis+cluster://127.0.0.1:7000?x=1", "nodes only"),
        ("redis+cluster://127.0.0.1:70000", "out of range"),
    ],
)
def test_a_bad_cluster_url_is_a_settings_error(url, reason):
    with pytest.raises(ValueError, match=reason):
        parse_cluster_url(url)
    with override_settings(DRF_SCALE={**settings.DRF_SCALE, "CACHE_URL": url}):
        (error,) = check_settings()
        assert error.id == "drf_scale.E061"
    assert parse_cluster_url("redis+cluster://:pw@a:1,b").nodes == (("a", 1), ("b", 6379))
