"""ASGI: the service under gunicorn + uvicorn workers, and the async shipping-quote view.

Servers and the stand-in upstream run as real subprocesses on free ports and are always
stopped. Timing is asserted only as "did not hang".
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
import upstream
from django.db import connection

from tests import services
from tests.factories import make_catalog
from tests.services import PORTS

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
ASGI = ["example.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker"]
WSGI = ["example.wsgi", "--worker-class", "sync"]
# The gunicorn config drf_scale documents: each worker drops what it inherited.
GUNICORN_CONF = "from drf_scale.db import post_fork  # noqa: F401\n"


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "0", "SERVER_MODE": "asgi"}
    # The provider answers at once; a loaded machine must not turn that into a 504.
    env["UPSTREAM_TIMEOUT"] = "30"
    env["DJANGO_SETTINGS_MODULE"] = "example.settings"
    env.pop("DB_MODE", None)
    return {**env, **extra}


def get(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@contextmanager
def gunicorn(app: list[str], env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """Serve ``app`` with gunicorn on a free port; yield the base URL; always stop it.

    ``--preload`` with the documented config: the app is imported once, then forked, and
    drf_scale.db.post_fork runs in each worker.
    """
    url = f"http://127.0.0.1:{upstream.free_port()}"
    with tempfile.TemporaryDirectory() as tmp, open(f"{tmp}/log", "w+b") as log:
        Path(tmp, "gunicorn.conf.py").write_text(GUNICORN_CONF)
        command = [sys.executable, "-m", "gunicorn", *app, "--workers", str(workers)]
        command += ["--preload", "--config", f"{tmp}/gunicorn.conf.py"]
        command += ["--bind", url.removeprefix("http://")]
        proc = subprocess.Popen(command, cwd=EXAMPLE, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 90  # readiness, bounded generously for a loaded machine
            while get_or_none(url + "/api/") is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"gunicorn did not come up:\n{log.read().decode()[-3000:]}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def get_or_none(url: str) -> int | None:
    try:
        return get(url)[0]
    except OSError:
        return None


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` of the reference service; what it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE, env=env, check=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return done.stdout


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with upstream.running() as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory, upstream_url) -> dict[str, str]:
    """The service's environment on a migrated, seeded, temporary SQLite database."""
    if connection.vendor != "sqlite":
        pytest.skip("runs in the SQLite pass: the server has a SQLite file of its own")
    path = tmp_path_factory.mktemp("asgi") / "shop.sqlite3"
    env = service_env(f"sqlite:///{path}", UPSTREAM_URL=upstream_url)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "seed", "--products", "40", "--seed", "1")
    return env


CONTRACT = [
    ("GET", "/api/products/"),
    ("GET", "/api/products/?page_size=5&page=2&ordering=price"),
    ("GET", "/api/products/?status=active&min_price=10&max_price=200"),
    ("GET", "/api/products/7/"),
    ("GET", "/api/products/7/reviews/"),
    ("GET", "/api/brands/"),
    ("GET", "/api/categories/"),
    ("GET", "/naive/stats/top-products/?days=365"),
    ("GET", "/naive/products/?page_size=3"),
    ("GET", "/api/products/999999/"),
    ("GET", "/api/products/?page_size=1000"),
    ("GET", "/naive/stats/top-products/?days=0"),
    ("POST", "/api/orders/"),
]


@pytest.fixture(scope="module")
def asgi_url(sqlite_env) -> Iterator[str]:
    with gunicorn(ASGI, sqlite_env) as url:
        yield url


def test_asgi_server_answers_the_contract_as_the_wsgi_server_does(sqlite_env, asgi_url):
    asgi = asgi_url
    with gunicorn(WSGI, {**sqlite_env, "SERVER_MODE": "wsgi"}, workers=1) as wsgi:
        for method, path in CONTRACT:
            status, headers, body = get(asgi + path, method)
            expected_status, _, expected_body = get(wsgi + path, method)
            assert status == expected_status, path
            assert body.replace(asgi.encode(), b"") == expected_body.replace(wsgi.encode(), b"")
            assert headers["Content-Type"] == "application/json", path
            assert "Server-Timing" in headers, path


def test_asgi_server_serves_the_async_shipping_quote(asgi_url):
    product = json.loads(get(asgi_url + "/api/products/7/")[2])
    status, _, body = get(asgi_url + "/api/products/7/shipping-quote/?dest=DE&quantity=3")
    assert status == 200
    quote = upstream.quote("DE", 3, Decimal(product["price"]) * 3)
    assert json.loads(body) == {"product": 7, "dest": "DE", "quantity": 3, **quote}


def test_async_product_views_serve_cache_hits_under_asgi(sqlite_env):
    """Two uvicorn workers share the Redis store: after the misses, hits without a query."""
    if not services.reachable("redis"):
        if services.in_ci():
            pytest.fail("Redis is not reachable and CI=true")
        pytest.skip("needs Redis")
    redis_url = "redis://127.0.0.1:6379/3"
    redis.Redis.from_url(redis_url).flushdb()  # no entry of an earlier run's database
    with gunicorn(ASGI, {**sqlite_env, "REDIS_URL": redis_url}) as url:
        detail = [get(url + "/api/async/products/7/") for _ in range(6)]
        page = [get(url + "/api/async/products/?page_size=5") for _ in range(6)]
        sync_detail = get(url + "/api/products/7/")
        sync_page = get(url + "/api/products/?page_size=5")
    assert {status for status, _, _ in detail + page} == {200}
    _, headers, body = detail[-1]
    assert (headers["X-Cache"], headers["ETag"]) == ("hit", sync_detail[1]["ETag"])
    assert 'desc="0 queries"' in headers["Server-Timing"]
    assert body == sync_detail[2]
    _, headers, body = page[-1]
    assert headers["X-Cache"] == "5/5 hit"
    assert json.loads(body)["results"] == json.loads(sync_page[2])["results"]


def queries(headers: dict[str, str]) -> int:
    """The query count of a response's Server-Timing header."""
    match = re.search(r'desc="(\d+) queries"', headers["Server-Timing"])
    assert match is not None, headers["Server-Timing"]
    return int(match.group(1))


def walk(url: str, first: str) -> tuple[list[dict], list[dict[str, str]]]:
    """Every row of a cursor-paginated list from ``first`` on, and each page's headers."""
    rows, pages, path = [], [], first
    while path:
        status, headers, body = get(url + path)
        assert status == 200, body
        page = json.loads(body)
        rows += page["results"]
        pages.append(headers)
        path = page["next"] and page["next"].removeprefix(url)
    return rows, pages


def test_async_cached_reads_under_asgi(sqlite_env):
    """AsyncCachedReads under uvicorn workers sharing Redis: a miss queries, a hit does not
    (Server-Timing, counted by the middleware around the async views); the same body and
    ETag as /api/; 304 on If-None-Match; 404 JSON; list pages served from the cache."""
    if not services.reachable("redis"):
        if services.in_ci():
            pytest.fail("Redis is not reachable and CI=true")
        pytest.skip("needs Redis")
    redis_url = "redis://127.0.0.1:6379/5"
    redis.Redis.from_url(redis_url).flushdb()  # no entry of an earlier run's database
    with gunicorn(ASGI, {**sqlite_env, "REDIS_URL": redis_url}) as url:
        miss = get(url + "/api/async/products/9/")
        hit = get(url + "/api/async/products/9/")
        sync = get(url + "/api/products/9/")
        etag = hit[1]["ETag"]
        revalidated = get(url + "/api/async/products/9/", headers={"If-None-Match": etag})
        missing = get(url + "/api/async/products/999999/")
        cold_rows, cold_pages = walk(url, "/api/async/products/?page_size=7&ordering=price")
        warm_rows, warm_pages = walk(url, "/api/async/products/?page_size=7&ordering=price")
        api_rows, _ = walk(url, "/api/products/?page_size=7&ordering=price")

    assert (miss[0], miss[1]["X-Cache"], hit[0], hit[1]["X-Cache"]) == (200, "miss", 200, "hit")
    assert queries(miss[1]) > 0 and queries(hit[1]) == 0
    assert miss[2] == hit[2] == sync[2] and miss[1]["ETag"] == etag == sync[1]["ETag"]
    assert hit[1]["Content-Type"] == "application/json"
    assert (hit[1]["Cache-Control"], hit[1]["Vary"]) == (sync[1]["Cache-Control"], "Accept")
    assert (revalidated[0], revalidated[2], revalidated[1]["ETag"]) == (304, b"", etag)
    assert queries(revalidated[1]) == 0
    assert missing[0] == 404 and queries(missing[1]) > 0
    assert json.loads(missing[2]) == {"detail": "No Product matches the given query."}
    assert cold_rows == warm_rows == api_rows and len(api_rows) == 40
    assert cold_pages[0]["X-Cache"] == "0/7 hit"
    assert [page["X-Cache"] for page in warm_pages] == ["7/7 hit"] * 5 + ["5/5 hit"]


# The view in process, against the upstream subprocess in each of its moods.


@pytest.fixture
def quote_settings(settings, upstream_url):
    settings.SHIPPING_URL = upstream_url
    # The provider answers at once; a loaded machine (CI ran this at 504) must not time out.
    settings.SHIPPING_TIMEOUT = 30
    return settings


def test_shipping_quote_is_the_providers_quote_after_one_query(client, catalog, quote_settings):
    product = catalog["products"][4]
    response = client.get(f"/api/products/{product.id}/shipping-quote/?dest=FR&quantity=2")
    assert response.status_code == 200
    assert response.json() == {
        "product": product.id,
        "dest": "FR",
        "quantity": 2,
        **upstream.quote("FR", 2, product.price * 2),
    }
    assert response.timing.queries == 1
    default = client.get(f"/api/products/{product.id}/shipping-quote/?dest=US").json()
    assert (default["quantity"], default["carrier"]) == (1, "GlobalShip")


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "dest"), ("?dest=fr", "dest"), ("?dest=FR&quantity=0", "quantity"),
     ("?dest=FR&quantity=x", "quantity"), ("?dest=FR&quantity=101", "quantity")],
)  # fmt: skip
def test_bad_quote_query_is_400_json(client, catalog, quote_settings, query, field):
    response = client.get(f"/api/products/{catalog['products'][0].id}/shipping-quote/{query}")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_unknown_product_and_other_methods(client, catalog, quote_settings):
    missing = client.get("/api/products/999999/shipping-quote/?dest=FR")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No Product matches the given query."}
    post = client.post(f"/api/products/{catalog['products'][0].id}/shipping-quote/?dest=FR")
    assert post.status_code == 405
    assert post["Allow"] == "GET"
    assert post.json() == {"detail": 'Method "POST" not allowed.'}


@pytest.mark.parametrize(
    ("mood", "status", "detail"),
    [
        ({"latency": 60.0}, 504, "Shipping provider timed out."),  # far past the timeout
        ({"status": 500}, 503, "Shipping provider unavailable."),
        ({"status": 404}, 502, "Shipping provider sent an invalid answer."),
        (None, 503, "Shipping provider unavailable."),  # nothing listens
    ],
)
def test_upstream_trouble_is_a_clear_5xx_never_a_hang(
    client, catalog, settings, mood, status, detail
):
    settings.SHIPPING_TIMEOUT = 0.5
    url = f"/api/products/{catalog['products'][0].id}/shipping-quote/?dest=FR"
    with upstream.running(**mood) if mood else nothing_listening() as upstream_url:
        settings.SHIPPING_URL = upstream_url
        response = client.get(url)  # a provider that never answers in time: the timeout
    assert response.status_code == status
    assert response.json() == {"detail": detail}


@contextmanager
def nothing_listening() -> Iterator[str]:
    yield f"http://127.0.0.1:{upstream.free_port()}"


# Connections under ASGI, on PostgreSQL.


class Peak:
    """The highest value ``count()`` returns while the block runs, sampled in a thread."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count, self.value = count, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.value = max(self.value, self.count())

    def __enter__(self) -> "Peak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def server_connections(application_name: str) -> int:
    host, port = PORTS["postgres"]
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        ).fetchone()
    return row[0] if row else 0


@pytest.mark.postgres
@pytest.mark.parametrize(("mode", "most", "left"), [("direct", 50, 0), ("pool", 2 * 10, 2 * 10)])
def test_no_connection_leak_under_asgi(transactional_db, upstream_url, mode, most, left):
    """200 requests, 50 at a time: at most one connection per request in flight (direct)
    or what the pools of 2 workers hold (pool); afterwards none (direct) or the pools."""
    product = make_catalog(products=3)["products"][0]
    host, port = PORTS["postgres"]
    name = f"drf-scale-asgi-{mode}"
    url = f"postgres://postgres@{host}:{port}/{connection.settings_dict['NAME']}"
    env = service_env(f"{url}?application_name={name}", DB_MODE=mode, UPSTREAM_URL=upstream_url)
    paths = ["/api/products/?page_size=5", f"/api/products/{product.id}/shipping-quote/?dest=FR"]
    with gunicorn(ASGI, env) as base:
        with Peak(lambda: server_connections(name)) as peak, ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(lambda i: get(base + paths[i % 2])[0], range(200)))
        deadline = time.monotonic() + 10
        while (after := server_connections(name)) > left and time.monotonic() < deadline:
            time.sleep(0.2)
    assert statuses == [200] * 200
    assert 0 < peak.value <= most
    assert after <= left
