"""Surrogate keys and edge purges (drf_scale.edge).

The purgers of Fastly and Cloudflare talk to a stand-in server that checks each request as
their APIs document it; Varnish is a real varnishd with the xkey vmod in front of a live
server. Purges run after commits: the tests that write use real transactions.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import HttpResponse
from django.test import override_settings
from django.urls import include, path
from rest_framework import viewsets
from rest_framework.routers import SimpleRouter

from drf_scale.cache import CachedRetrieveMixin
from drf_scale.cache.invalidation import registry
from drf_scale.cache.store import get_store
from drf_scale.cache.views import RepresentationCache
from drf_scale.checks import check_representation_cache
from drf_scale.conf import scale_settings
from drf_scale.edge import (
    CloudflarePurger,
    FastlyPurger,
    PurgeFailed,
    object_key,
    pending_purges,
)
from drf_scale.http import set_cache_headers
from drf_scale.oncommit import hook_failures
from shop.api_serializers import ProductDetailSerializer
from shop.api_views import ProductViewSet
from shop.models import Brand, Product, Review, Tag
from tests.factories import make_catalog, make_user
from tests.processes import ManagedProcess, wait_until
from tests.test_aggregates import (  # noqa: F401 - process_env: a fixture
    BROKER_URL,
    Process,
    configure_celery,
    process_env,
    procfile_worker,
)
from tests.test_cache_outage import free_port
from tests.testapp.models import Device, DeviceBySeries, Remark
from tests.zoo.data import make_zoo
from tests.zoo.serializers import RemarkSerializer

committed = pytest.mark.django_db(transaction=True)
VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"


class StandIn(ThreadingHTTPServer):
    """An edge API on a free port: records each request, answers from ``statuses`` (then 200)
    with ``body``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.body = b'{"status": "ok", "success": true}'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keys(self, field: str) -> set[str]:
        return {key for request in self.requests for key in request["json"][field]}


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append(
            {"path": self.path, "headers": dict(self.headers), "json": body}
        )
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def edge(
    header: str = "Surrogate-Key", purger: str | None = None, cooldown: float = 0, **options: Any
) -> Any:
    """override_settings of DRF_SCALE with an edge: keys in ``header``, ``purger`` built with
    ``options``; each purge asks the edge unless ``cooldown`` (the breaker's test)."""
    configured = {
        **scale_settings.user_settings,
        "EDGE_KEY_HEADER": header,
        "EDGE_PURGER": purger,
        "EDGE_PURGER_OPTIONS": options,
        "EDGE_PURGE_TIMEOUT": 2.0,
        "EDGE_PURGE_COOLDOWN": cooldown,
    }
    return override_settings(DRF_SCALE=configured)


def fastly(server: StandIn, cooldown: float = 0) -> Any:
    return edge(
        "Surrogate-Key", "drf_scale.edge.FastlyPurger", cooldown, service_id="svc1",
        token="t0k", api=server.url, backoff=0.001,
    )  # fmt: skip


@pytest.fixture
def catalog() -> dict:
    get_store().clear()
    return make_catalog(products=4, reviews_per_product=2)


def keys_of(response: Any, header: str = "Surrogate-Key") -> set[str]:
    separator = "," if header == "Cache-Tag" else " "
    return set(response[header].split(separator))


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Surrogate-Key", "xkey", "Cache-Tag"])
def test_a_public_detail_names_its_row_and_every_row_it_embeds(client, catalog, header):
    product = next(p for p in catalog["products"] if p.tags.exists())
    with edge(header):
        miss = client.get(f"/api/products/{product.pk}/")
        hit = client.get(f"/api/products/{product.pk}/")
    assert (miss["X-Cache"], hit["X-Cache"]) == ("miss", "hit")
    expected = {
        f"shop.product:{product.pk}",
        f"shop.brand:{product.brand_id}",
        f"shop.category:{product.category_id}",
        *(f"shop.tag:{pk}" for pk in product.tags.values_list("pk", flat=True)),
        "shop.product:all",
    }
    assert keys_of(miss, header) >= expected
    assert keys_of(hit, header) == keys_of(miss, header)  # stored with the representation
    assert "s-maxage=60" in hit["Cache-Control"]


@pytest.mark.django_db
def test_a_list_names_its_collection(client, catalog):
    with edge():
        listed = client.get("/api/products/")
    assert keys_of(listed) == {"shop.product:list", "shop.product:all"}


def test_private_responses_never_carry_keys():
    with edge():
        private = set_cache_headers(HttpResponse(), public=False, keys=("shop.product:1",))
        assert not RepresentationCache(ProductDetailSerializer, "user:7").edge_keys
        assert RepresentationCache(ProductDetailSerializer, "public").edge_keys
    assert "Surrogate-Key" not in private
    assert private["Cache-Control"] == "private, no-cache"


@pytest.mark.django_db
def test_a_public_response_without_keys_is_not_kept_by_the_edge(client, catalog):
    product = catalog["products"][0]
    with edge():
        bypass = client.get(f"/api/products/{product.pk}/?format=json&x=1")
    assert "Surrogate-Key" not in bypass
    assert "s-maxage=0" in bypass["Cache-Control"]


@pytest.mark.django_db
def test_a_key_of_a_pk_that_is_not_a_token_is_hashed():
    assert object_key("shop.tag", 12) == "shop.tag:12"
    odd = object_key("shop.tag", "a b|c")
    assert odd.startswith("shop.tag:~") and " " not in odd and "|" not in odd
    assert odd == object_key("shop.tag", "a b|c") != object_key("shop.tag", "a b|d")


@committed
def test_renaming_a_brand_purges_its_key_and_the_product_lists(client, catalog, stand_in):
    brand = catalog["brands"][0]
    with fastly(stand_in):
        brand.name = "Renamed"
        brand.save()
    assert stand_in.keys("surrogate_keys") == {f"shop.brand:{brand.pk}", "shop.product:list"}
    [request] = stand_in.requests
    assert request["path"] == "/service/svc1/purge"
    assert request["headers"]["Fastly-Key"] == "t0k"
    assert request["headers"]["Fastly-Soft-Purge"] == "1"


@committed
def test_a_delete_in_a_transaction_purges_the_deleted_rows_key(client, catalog, stand_in):
    tag = Tag.objects.filter(products__isnull=False).first()
    assert tag is not None
    pk = tag.pk
    with fastly(stand_in), transaction.atomic():
        tag.delete()  # Django clears tag.pk before the commit runs the purge
    keys = stand_in.keys("surrogate_keys")
    assert f"shop.tag:{pk}" in keys and "shop.tag:None" not in keys


def test_a_proxy_names_the_rows_of_its_concrete_model():
    assert object_key(DeviceBySeries, 5) == object_key(Device, 5) == "testapp.device:5"


@committed
def test_a_review_moving_purges_both_products_it_touched(client, catalog, stand_in):
    review = Review.objects.select_related("product").first()
    assert review is not None
    left = review.product
    target = Product.objects.exclude(pk=left.pk).first()
    assert target is not None
    with fastly(stand_in):
        review.product = target
        review.save()
    keys = stand_in.keys("surrogate_keys")
    assert {f"shop.product:{left.pk}", f"shop.product:{target.pk}"} <= keys
    assert f"shop.review:{review.pk}" in keys


@committed
def test_tagging_a_product_purges_that_product(client, catalog, stand_in):
    product = catalog["products"][0]
    tag = Tag.objects.create(name="new")
    with fastly(stand_in):
        product.tags.add(tag)
    assert f"shop.product:{product.pk}" in stand_in.keys("surrogate_keys")


@committed
def test_fastly_batches_256_keys_a_request(stand_in):
    with fastly(stand_in):
        FastlyPurger("svc1", "t0k", api=stand_in.url).purge([f"k{i}" for i in range(600)])
    assert [len(r["json"]["surrogate_keys"]) for r in stand_in.requests] == [256, 256, 88]


def test_cloudflare_batches_100_tags_and_checks_success(stand_in):
    purger = CloudflarePurger("zone9", "cf-token", api=stand_in.url, timeout=2, retries=0)
    purger.purge([f"k{i}" for i in range(150)])
    assert [len(r["json"]["tags"]) for r in stand_in.requests] == [100, 50]
    assert stand_in.requests[0]["path"] == "/zones/zone9/purge_cache"
    assert stand_in.requests[0]["headers"]["Authorization"] == "Bearer cf-token"
    stand_in.body = b'{"success": false, "errors": [{"code": 1134}]}'
    with pytest.raises(PurgeFailed) as failed:
        purger.purge(["k1"])
    assert not failed.value.retry


def test_a_purge_is_retried_with_backoff_on_5xx_and_429_not_on_4xx(stand_in):
    purger = FastlyPurger("svc1", "t0k", api=stand_in.url, timeout=2, retries=2, backoff=0.001)
    stand_in.statuses = [503, 429]
    purger.purge(["a"])
    assert len(stand_in.requests) == 3  # two refusals, then taken
    stand_in.statuses = [403]
    with pytest.raises(PurgeFailed) as failed:
        purger.purge(["a"])
    assert not failed.value.retry and len(stand_in.requests) == 4


@committed
def test_an_edge_that_is_down_never_fails_the_write_and_its_keys_go_with_the_next_purge(
    client, catalog, stand_in
):
    brand = catalog["brands"][1]
    before = hook_failures().get("edge purge", 0)
    with fastly(stand_in):
        stand_in.statuses = [503, 503]  # every try of the first purge
        brand.name = "While down"
        brand.save()
        assert stand_in.requests and pending_purges()["pending"] >= 2  # kept in this process
        brand.name = "Back"
        brand.save()
    last = stand_in.requests[-1]["json"]["surrogate_keys"]
    assert f"shop.brand:{brand.pk}" in last
    assert pending_purges()["pending"] == 0
    assert hook_failures().get("edge purge", 0) == before  # the purge step itself did not fail


@committed
def test_after_a_failed_purge_writes_do_not_ask_the_edge_until_the_cooldown(catalog, stand_in):
    brand = catalog["brands"][0]
    with fastly(stand_in, cooldown=60):
        stand_in.statuses = [503, 503]
        brand.name = "First"
        brand.save()
        asked = len(stand_in.requests)
        brand.name = "Second"
        brand.save()
        assert len(stand_in.requests) == asked  # the breaker is open: not asked again
        assert pending_purges()["pending"] >= 2  # both writes' keys wait for the next purge


@committed
def test_a_write_through_the_api_answers_while_the_edge_is_unreachable(client, catalog):
    admin = make_user("admin", staff=True)
    client.force_login(admin)
    product = catalog["products"][0]
    dead = f"http://127.0.0.1:{free_port()}"
    with edge("xkey", "drf_scale.edge.VarnishPurger", urls=[dead], retries=0):
        response = client.patch(
            f"/api/products/{product.pk}/", {"name": "Written"}, content_type="application/json"
        )
    assert response.status_code == 200
    assert Product.objects.get(pk=product.pk).name == "Written"


@pytest.mark.urls(__name__)
@committed
def test_a_representation_embedding_a_generic_foreign_key_is_never_cached(client):
    """A write to the row a generic foreign key points to (any model) cannot be traced back
    to the remarks showing it: the view serves from the database, and says so (W041)."""
    make_zoo(3)
    device_type = ContentType.objects.get_for_model(Device)
    remark = Remark.objects.filter(content_type=device_type).first()
    assert remark is not None
    assert "'content_object'" in registry.untracked[RemarkSerializer]
    with edge():
        seen = [client.get(f"/remarks/{remark.pk}/") for _ in range(2)]
        Device.objects.filter(pk=remark.object_id).update(name="renamed")
        after = client.get(f"/remarks/{remark.pk}/")
    assert [r["X-Cache"] for r in seen] == ["bypass", "bypass"]
    assert "xkey" not in after and "Surrogate-Key" not in after
    assert "s-maxage=0" in after["Cache-Control"]
    assert after.json()["target"].endswith(":renamed")
    warned = [m for m in check_representation_cache() if m.id == "drf_scale.W041"]
    assert [m.obj for m in warned] == [RemarkViewSet]


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_serializer_the_view_did_not_declare_is_not_cached(client, catalog):
    """Its embedded rows were never registered: a write to them would not invalidate it."""
    product = catalog["products"][0]
    answers = [client.get(f"/dynamic/{product.pk}/")["X-Cache"] for _ in range(2)]
    assert answers == ["bypass", "bypass"]


# A purge the edge refused goes to the task queue: a real Celery worker retries it.


@pytest.fixture(scope="module")
def edge_api() -> Iterator[StandIn]:
    server = StandIn()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def edge_worker(request, edge_api, tmp_path_factory) -> Iterator[Process]:
    """The Procfile's worker on the test database and broker, purging at ``edge_api``."""
    env = request.getfixturevalue("process_env")  # test_aggregates': Redis, or a skip
    log = tmp_path_factory.mktemp("edge-worker") / "worker.log"
    with procfile_worker({**env, "EDGE_TEST_API": edge_api.url}, log) as worker:
        yield worker


@pytest.mark.postgres
@committed
def test_a_purge_the_edge_refused_is_retried_by_a_celery_worker(catalog, edge_api, edge_worker):
    edge_api.requests.clear()
    edge_api.statuses = [503] * 3  # this process's try, then the worker's first two
    brand = catalog["brands"][2]
    replaced = configure_celery(broker_url=BROKER_URL, task_always_eager=False)
    try:
        with edge("Surrogate-Key", "drf_scale.edge.FastlyPurger", service_id="svc1",
                  token="t0k", api=edge_api.url, retries=0):  # fmt: skip
            brand.name = "Retried by the worker"
            brand.save()
    finally:
        configure_celery(**replaced)
    assert pending_purges()["pending"] == 0  # queued as a task, not kept here
    wait_until(lambda: len(edge_api.requests) >= 4, "the worker's purge after its retry", 30)
    assert f"shop.brand:{brand.pk}" in edge_api.requests[-1]["json"]["surrogate_keys"]
    assert "Retry in" in edge_worker.output()


# A real Varnish with the xkey vmod in front of a live server.

# The VCL the topology's Varnish runs too (tests/topology): backend host and port, and
# the addresses allowed to PURGE besides 127.0.0.1, are filled in.
VCL = (Path(__file__).parent / "topology" / "edge.vcl").read_text()


class Varnish(ManagedProcess):
    """varnishd on a free port, in a temp dir, in front of ``backend_port``."""

    def __init__(self, directory: Path, backend_port: int) -> None:
        directory.chmod(0o755)  # varnishd reads the VCL as its own user
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "varnish.log"
        vcl = directory / "edge.vcl"
        vcl.write_text(VCL % {"host": "127.0.0.1", "port": backend_port, "purgers": ""})
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    VARNISHD, "-F", "-n", str(directory / "n"), "-T", "none",
                    "-a", f"127.0.0.1:{self.port}", "-f", str(vcl), "-s", "malloc,32m",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self.answers, f"varnishd on port {self.port}", 30, self.log.read_text)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"varnishd exited:\n{self.log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.request("PURGE", self.url, headers={"xkey-purge": "x"}).status_code == 200
        return False


@pytest.fixture
def varnish(live_server) -> Iterator[Varnish]:
    if not Path(VARNISHD).exists():
        from tests.services import in_ci

        message = "the Varnish tests need varnishd and the xkey vmod (apt-get install varnish)"
        if in_ci():
            pytest.fail(f"{message} and CI=true")
        pytest.skip(message)
    port = int(live_server.url.rsplit(":", 1)[1])
    with tempfile.TemporaryDirectory(prefix="drf-scale-varnish-") as directory:
        server = Varnish(Path(directory), port)
        yield server
        server.terminate()


@committed
def test_varnish_serves_from_the_edge_until_a_write_purges_exactly_what_it_changed(
    catalog, varnish
):
    products = catalog["products"]
    brand = products[0].brand
    embeds, other = products[0], next(p for p in products if p.brand_id != brand.pk)
    with edge("xkey", "drf_scale.edge.VarnishPurger", urls=[varnish.url]):
        edge_client = httpx.Client(base_url=varnish.url, headers={"Accept": "application/json"})
        for product in (embeds, other):
            assert edge_client.get(f"/api/products/{product.pk}/").headers["X-Edge"] == "miss"
            assert edge_client.get(f"/api/products/{product.pk}/").headers["X-Edge"] == "hit"
        assert edge_client.get("/api/products/").headers["X-Edge"] == "miss"
        assert edge_client.get("/api/products/").headers["X-Edge"] == "hit"

        Brand.objects.filter(pk=brand.pk).update(name="Purged")  # CachedManager: after commit

        fresh = edge_client.get(f"/api/products/{embeds.pk}/")
        assert (fresh.headers["X-Edge"], fresh.json()["brand"]["name"]) == ("miss", "Purged")
        assert edge_client.get(f"/api/products/{other.pk}/").headers["X-Edge"] == "hit"
        listed = edge_client.get("/api/products/")
        assert listed.headers["X-Edge"] == "miss"
        names = {row["brand"]["name"] for row in listed.json()["results"]}
        assert "Purged" in names


@pytest.mark.urls(__name__)
@committed
def test_varnish_does_not_keep_a_response_whose_fetch_began_before_a_purge(catalog, varnish):
    """The purge reaches Varnish while the fetch is under way: the old answer arrives after
    it, and only the edge's VCL (a fetch begun before the last purge is not kept) stops it."""
    product = Product.objects.order_by("pk")[0]
    with edge("xkey", "drf_scale.edge.VarnishPurger", urls=[varnish.url]):
        edge_client = httpx.Client(base_url=varnish.url)
        raced = edge_client.get(f"/late/{product.pk}/", headers={"X-Write-After-Render": "1"})
        assert raced.json()["brand"]["name"] != "After the render"  # rendered before
        assert "xkey" in raced.headers  # the origin had no way to know: keys, s-maxage=60
        fresh = edge_client.get(f"/late/{product.pk}/")
    assert (fresh.headers["X-Edge"], fresh.json()["brand"]["name"]) == ("miss", "After the render")


@committed
def test_varnish_soft_purge_marks_objects_stale(catalog, varnish):
    product = catalog["products"][0]
    with edge("xkey", "drf_scale.edge.VarnishPurger", urls=[varnish.url], soft=True):
        edge_client = httpx.Client(base_url=varnish.url)
        edge_client.get(f"/api/products/{product.pk}/")
        assert edge_client.get(f"/api/products/{product.pk}/").headers["X-Edge"] == "hit"
        Product.objects.filter(pk=product.pk).update(name="Soft")
        # Within stale-while-revalidate the edge may answer once more from the stale object,
        # while it fetches the new one: the next answers are fresh.
        wait_until(
            lambda: edge_client.get(f"/api/products/{product.pk}/").json()["name"] == "Soft",
            "the soft-purged product to be fetched again",
        )


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ({"EDGE_PURGER": "drf_scale.edge.FastlyPurger", "EDGE_KEY_HEADER": "Surrogate-Key"},
         ["drf_scale.E030"]),  # no service_id nor token
        ({"EDGE_PURGER": "drf_scale.conf.Spec", "EDGE_KEY_HEADER": "xkey"}, ["drf_scale.E030"]),
        ({"EDGE_PURGER": "drf_scale.edge.VarnishPurger",
          "EDGE_PURGER_OPTIONS": {"urls": ["http://127.0.0.1:6081"]}}, ["drf_scale.W027"]),
        ({"EDGE_PURGER": "drf_scale.edge.VarnishPurger", "EDGE_KEY_HEADER": "xkey",
          "EDGE_PURGER_OPTIONS": {"urls": ["http://127.0.0.1:6081"]}}, []),
        ({"EDGE_KEY_HEADER": "X-Keys"}, ["drf_scale.E062"]),
        ({"EDGE_KEY_HEADER": "Cache-Tag"}, ["drf_scale.W028"]),
    ],
)  # fmt: skip
def test_the_edge_settings_are_checked_at_startup(configured, expected):
    from django.core.checks import run_checks

    with override_settings(DRF_SCALE=configured):
        found = {message.id for message in run_checks()}
    ids = {"drf_scale.E030", "drf_scale.W027", "drf_scale.W028", "drf_scale.E062"}
    assert sorted(found & ids) == expected


# A write that commits while a response renders: the edge must not keep that response.


class WriteDuringRender(ProductViewSet):
    """Renames the first product's brand, committed, while its detail renders (after the
    lease) or while a list page is read (after its version)."""

    cache_hits_before_drf = False

    def write(self) -> None:
        if self.request.headers.get("X-Write-During-Render"):
            brand = Product.objects.values_list("brand", flat=True).order_by("pk")[0]
            Brand.objects.filter(pk=brand).update(name="Meanwhile")

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self.action == "retrieve":
            self.write()
        return super().finalize_response(request, response, *args, **kwargs)

    def cached_list_rows(self, queryset: Any) -> Any:
        found = super().cached_list_rows(queryset)
        self.write()
        return found


class WriteAfterRender(ProductViewSet):
    """Renames the product's brand, committed and purged, after its detail was rendered and
    stored, before the edge receives it: with ``X-Write-After-Render``."""

    cache_hits_before_drf = False

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.headers.get("X-Write-After-Render"):
            brand = Product.objects.values_list("brand", flat=True).get(pk=self.kwargs["pk"])
            Brand.objects.filter(pk=brand).update(name="After the render")
        return response


class RemarkViewSet(CachedRetrieveMixin, viewsets.ReadOnlyModelViewSet):
    """A public cached detail embedding a generic foreign key's target (NetBox's shape)."""

    queryset = Remark.objects.all()
    serializer_class = RemarkSerializer
    cache_scope = "public"


class UnregisteredDetail(ProductDetailSerializer):
    """A serializer no cached view declared: its dependencies were never registered."""


class DynamicSerializerViewSet(CachedRetrieveMixin, viewsets.ReadOnlyModelViewSet):
    """Declares one serializer, answers another (``?fields=``-style dynamic serializers)."""

    queryset = Product.objects.all()
    serializer_class = ProductDetailSerializer
    cache_scope = "public"

    def get_serializer_class(self) -> Any:
        return UnregisteredDetail


racing = SimpleRouter()
racing.register("racing", WriteDuringRender, basename="racing")
racing.register("late", WriteAfterRender, basename="late")
racing.register("remarks", RemarkViewSet, basename="remark")
racing.register("dynamic", DynamicSerializerViewSet, basename="dynamic")
urlpatterns = [path("", include(racing.urls))]


@pytest.mark.urls(__name__)
@committed
@pytest.mark.parametrize("url", ["/racing/{pk}/", "/racing/"])
def test_a_response_rendered_across_a_write_is_not_kept_by_the_edge(client, catalog, url):
    product = Product.objects.order_by("pk")[0]
    url = url.format(pk=product.pk)
    with edge():
        plain = client.get(url)
        get_store().clear()  # the raced read misses: it renders under a lease the write revokes
        raced = client.get(url, HTTP_X_WRITE_DURING_RENDER="1")
        after = client.get(url)
    assert "Surrogate-Key" in plain and "s-maxage=60" in plain["Cache-Control"]
    assert raced.status_code == 200 and raced["X-Cache"] != "bypass"
    assert "Surrogate-Key" in after and "s-maxage=60" in after["Cache-Control"]
    assert "Surrogate-Key" not in raced
    assert "s-maxage=0" in raced["Cache-Control"]
