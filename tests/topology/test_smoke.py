"""The topology end to end: Varnish caches, HAProxy spreads over the 3 app hosts, a write
through HAProxy purges Varnish, a Celery worker answers on each worker host."""

from __future__ import annotations

import httpx

from tests.topology.services import Topology


def test_a_get_through_the_edge_is_a_miss_then_a_hit(topology: Topology) -> None:
    url = f"{topology.edge_url}/api/products/3/"
    first, second = httpx.get(url, timeout=30), httpx.get(url, timeout=30)
    assert (first.status_code, first.headers["X-Edge"]) == (200, "miss")
    assert (second.status_code, second.headers["X-Edge"]) == (200, "hit")
    assert second.json() == first.json()


def test_the_balancer_sends_gets_to_all_three_hosts(topology: Topology) -> None:
    for n, url in enumerate(topology.app_urls, 1):
        assert httpx.get(f"{url}/api/brands/", timeout=30).headers["X-Served-By"] == f"app{n}"
    answers = [httpx.get(f"{topology.lb_url}/api/products/?page_size=1") for _ in range(6)]
    assert {answer.status_code for answer in answers} == {200}
    assert {answer.headers["X-Served-By"] for answer in answers} == {"app1", "app2", "app3"}


def test_a_write_through_the_balancer_purges_the_edge(topology: Topology) -> None:
    path, name = "/api/products/5/", "Renamed through the balancer"
    edge = httpx.Client(base_url=topology.edge_url, timeout=30)
    edge.get(path)
    assert edge.get(path).headers["X-Edge"] == "hit"
    patched = httpx.patch(
        f"{topology.lb_url}{path}", json={"name": name}, timeout=30,
        headers={"Authorization": f"Token {topology.token}"},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    # The write's WAL position: the miss must not read the replica before it replayed it
    # (what it reads is what Varnish keeps).
    after = {"X-Read-After": patched.headers["X-Read-After"]}
    fresh = edge.get(path, headers=after)
    assert (fresh.headers["X-Edge"], fresh.json()["name"]) == ("miss", name)
    kept = edge.get(path)
    assert (kept.headers["X-Edge"], kept.json()["name"]) == ("hit", name)


def test_a_celery_worker_answers_on_each_worker_host(topology: Topology) -> None:
    nodes = ["celery@work1", "celery@work2"]
    assert topology.workers_answering(nodes) == set(nodes)
