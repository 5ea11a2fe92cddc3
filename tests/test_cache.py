"""The representation cache: what a write invalidates, leases, stampedes and scopes.

Invalidation runs after commits, so the tests that write use real transactions. The store is
Redis in the PostgreSQL pass (REDIS_URL) and process memory in the SQLite pass.
"""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from rest_framework import permissions, serializers, viewsets
from rest_framework.routers import SimpleRouter
from rest_framework.test import APIClient

from drf_scale.cache import CachedRetrieveMixin, invalidate, invalidate_model
from drf_scale.cache.store import Entry, Lease, get_store
from drf_scale.cache.views import RepresentationCache, entry_for, namespace
from drf_scale.conf import scale_settings
from shop.api_serializers import ProductDetailSerializer, ProductSerializer
from shop.models import Brand, Product, Review, Tag
from tests.factories import make_catalog, make_user

committed = pytest.mark.django_db(transaction=True)


def detail(client, product):
    response = client.get(f"/api/products/{product.pk}/")
    assert response.status_code == 200
    return response


def listed(client, product):
    """The product as the first list page shows it (the page is large enough for all)."""
    response = client.get("/api/products/?page_size=100")
    assert response.status_code == 200
    return next(row for row in response.json()["results"] if row["id"] == product.pk), response


@pytest.fixture
def warm(client):
    """A catalog whose every product is cached, detail and list."""
    catalog = make_catalog(products=6, reviews_per_product=2)
    product = catalog["products"][4]  # it has tags and reviews
    for item in catalog["products"]:
        detail(client, item)
    listed(client, product)
    assert detail(client, product)["X-Cache"] == "hit"
    assert listed(client, product)[1]["X-Cache"] == "6/6 hit"
    return catalog, product


@committed
def test_renaming_an_embedded_brand_invalidates_detail_and_list(client, warm):
    catalog, product = warm
    brand = product.brand
    brand.name = "Renamed"
    brand.save()
    fresh = detail(client, product)
    assert (fresh["X-Cache"], fresh.json()["brand"]["name"]) == ("miss", "Renamed")
    row, page = listed(client, product)
    assert row["brand"]["name"] == "Renamed"
    others = [p for p in catalog["products"] if p.brand_id != brand.pk]
    assert page["X-Cache"] == f"{len(others)}/6 hit"  # only the brand's products went
    assert detail(client, others[0])["X-Cache"] == "hit"


@committed
def test_category_rename_and_move_invalidate(client, warm):
    _, product = warm
    category = product.category
    category.name = "New name"
    category.save()
    assert detail(client, product).json()["category"]["name"] == "New name"
    category.parent = None  # the representation shows the parent's id
    category.save()
    assert detail(client, product).json()["category"]["parent"] is None


@committed
def test_retagging_and_tag_rename_invalidate(client, warm):
    _, product = warm
    new_tag = Tag.objects.create(name="fresh")
    product.tags.add(new_tag)
    assert "fresh" in [t["name"] for t in detail(client, product).json()["tags"]]
    new_tag.name = "renamed-tag"
    new_tag.save()
    assert "renamed-tag" in [t["name"] for t in listed(client, product)[0]["tags"]]
    product.tags.clear()
    assert detail(client, product).json()["tags"] == []


@committed
def test_adding_a_review_updates_stats_and_latest_reviews(client, warm):
    _, product = warm
    before = detail(client, product).json()
    reviewer = make_user("newcomer")
    Review.objects.create(product=product, user=reviewer, rating=5, title="New")
    after = detail(client, product).json()
    assert after["review_count"] == before["review_count"] + 1
    assert after["latest_reviews"][0]["title"] == "New"
    assert listed(client, product)[0]["review_count"] == after["review_count"]
    reviewer.username = "renamed-reviewer"
    reviewer.save()
    assert "renamed-reviewer" in str(detail(client, product).json()["latest_reviews"])


@committed
def test_moving_a_review_invalidates_the_old_and_the_new_product(client, warm):
    catalog, product = warm
    other = catalog["products"][5]
    review = Review.objects.create(product=product, user=make_user("mover"), rating=3, title="M")
    old_count = detail(client, product).json()["review_count"]
    detail(client, other)
    review.product = other
    review.save()
    assert detail(client, product).json()["review_count"] == old_count - 1
    assert review.title in str(detail(client, other).json()["latest_reviews"])


@committed
def test_a_rollback_leaves_the_cache_as_it_was(client, warm):
    _, product = warm
    cached = detail(client, product).json()
    with pytest.raises(RuntimeError), transaction.atomic():
        Brand.objects.filter(pk=product.brand_id).update(name="Never")
        Product.objects.filter(pk=product.pk).update(name="Never")
        raise RuntimeError("roll back")
    again = detail(client, product)
    assert (again["X-Cache"], again.json()) == ("hit", cached)


@committed
def test_bulk_operations_invalidate(client, warm):
    _, product = warm
    Product.objects.filter(pk=product.pk).update(name="Bulk renamed")
    assert detail(client, product).json()["name"] == "Bulk renamed"
    product.stock = 1
    Product.objects.bulk_update([product], ["stock"])
    assert detail(client, product)["X-Cache"] == "miss"
    reviewer = make_user("bulk")
    Review.objects.bulk_create([Review(product=product, user=reviewer, rating=4, title="Bulk")])
    assert "Bulk" in str(detail(client, product).json()["latest_reviews"])
    Review.objects.filter(product=product).delete()
    assert detail(client, product).json()["review_count"] == 0


@committed
def test_deleting_an_embedded_row_invalidates(client, warm):
    _, product = warm
    tag = product.tags.first()
    tag.delete()
    assert tag.name not in [t["name"] for t in detail(client, product).json()["tags"]]


@committed
def test_manual_invalidation_after_raw_sql(client, warm):
    _, product = warm
    table = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET name = %s WHERE id = %s", ["Raw", product.pk])
    assert detail(client, product).json()["name"] != "Raw"  # invisible to the cache
    invalidate(product)
    assert detail(client, product).json()["name"] == "Raw"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Brand._meta.db_table} SET name = 'Raw ' || name")
    invalidate_model(Brand)
    assert detail(client, product).json()["brand"]["name"].startswith("Raw ")
    assert listed(client, product)[0]["brand"]["name"].startswith("Raw ")


# Leases and stampedes, on the store the pass uses.


@pytest.fixture
def representations(db):
    return RepresentationCache(ProductSerializer, "public")


def test_a_read_before_an_invalidation_cannot_store_after_it(representations):
    [lease] = representations.lookup([1])
    assert isinstance(lease, Lease)
    get_store().invalidate({"shop.product": {1}})  # a write committed after the read
    representations.save([(1, lease, entry_for({"name": "old"}))])
    [again] = representations.lookup([1])
    assert isinstance(again, Lease)  # nothing was stored: the next read goes to the database


def test_one_request_rebuilds_a_missing_key_the_others_wait(representations, settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_LEASE_WAIT": 0.02}
    representations = RepresentationCache(ProductSerializer, "public")
    [first] = representations.lookup([2])
    [second] = representations.lookup([2])
    assert isinstance(first, Lease)
    assert second is None  # busy: it reads the database without storing
    entry = entry_for({"name": "fresh"})
    representations.save([(2, first, entry)])
    assert representations.lookup([2]) == [entry]


def test_a_released_lease_lets_the_next_request_rebuild(representations):
    [lease] = representations.lookup([3])
    representations.save([(3, lease, None)])  # the rebuild failed (a 404)
    [next_lease] = representations.lookup([3])
    assert isinstance(next_lease, Lease)


def test_a_changed_serializer_has_other_keys():
    class Renamed(ProductSerializer):
        class Meta(ProductSerializer.Meta):
            fields = [*ProductSerializer.Meta.fields, "description"]

    names = {namespace(ProductSerializer), namespace(ProductDetailSerializer), namespace(Renamed)}
    assert len(names) == 3


@pytest.mark.django_db
def test_missing_and_malformed_ids_are_404(client):
    assert client.get("/api/products/999999/").status_code == 404
    assert client.get("/api/products/999999/").status_code == 404
    assert client.get("/api/products/not-a-number/").status_code == 404


# Scopes: a representation that depends on the user is never shown to another user.


class ViewerSerializer(serializers.ModelSerializer):
    viewer = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "name", "viewer"]

    def get_viewer(self, product) -> str:
        return self.context["request"].user.username


class PerUserViewSet(CachedRetrieveMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = ViewerSerializer
    permission_classes = [permissions.IsAuthenticated]
    query_budget = None


class OwnerOnly(permissions.BasePermission):
    def has_object_permission(self, request, view, obj) -> bool:
        return request.user.is_staff


class ObjectCheckedViewSet(PerUserViewSet):
    cache_scope = "public"
    permission_classes = [OwnerOnly]


router = SimpleRouter()
router.register("mine", PerUserViewSet, basename="mine")
router.register("checked", ObjectCheckedViewSet, basename="checked")
urlpatterns = [path("", include(router.urls))]


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_user_scoped_representations_stay_with_their_user(catalog):
    product = catalog["products"][0]
    alice, bob = APIClient(), APIClient()
    alice.force_authenticate(make_user("alice"))
    bob.force_authenticate(make_user("bob"))
    seen = [client.get(f"/mine/{product.pk}/") for client in (alice, bob, alice, bob)]
    assert [r.json()["viewer"] for r in seen] == ["alice", "bob", "alice", "bob"]
    assert [r["X-Cache"] for r in seen] == ["miss", "miss", "hit", "hit"]
    assert "private" in seen[2]["Cache-Control"]
    assert "Authorization" in seen[2]["Vary"]
    anonymous = APIClient().get(f"/mine/{product.pk}/")
    assert anonymous.status_code in (401, 403)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_views_checking_objects_serve_hits_after_the_check(catalog):
    product = catalog["products"][0]
    staff, other = APIClient(), APIClient()
    staff.force_authenticate(make_user("boss", staff=True))
    other.force_authenticate(make_user("eve"))
    url = f"/checked/{product.pk}/"
    miss, hit = staff.get(url), staff.get(url)
    assert [miss["X-Cache"], hit["X-Cache"]] == ["miss", "hit"]
    assert hit.content == miss.content and hit["ETag"] == miss["ETag"]
    assert hit.timing.queries == 1  # the object the permission checks, by its primary key
    assert other.get(url).status_code == 403  # cached, and still refused
    assert staff.get(url, HTTP_IF_NONE_MATCH=hit["ETag"]).status_code == 304
    assert other.get(url, HTTP_IF_NONE_MATCH=hit["ETag"]).status_code == 403  # no 304 leak
    assert staff.get("/checked/999999/").status_code == 404


class OwnerFields(OwnerOnly):
    object_fields = ("name",)


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_the_checked_object_loads_only_what_the_permission_declares(catalog):
    product = catalog["products"][0]
    staff = APIClient()
    staff.force_authenticate(make_user("boss", staff=True))
    ObjectCheckedViewSet.permission_classes = [OwnerFields]
    try:
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(f"/checked/{product.pk}/").status_code == 200
    finally:
        ObjectCheckedViewSet.permission_classes = [OwnerOnly]
    checked = queries.captured_queries[0]["sql"]
    assert '"name"' in checked and '"price"' not in checked


def test_the_store_of_the_pass():
    redis_expected = bool(scale_settings.CACHE_URL)
    assert type(get_store()).__name__ == ("RedisStore" if redis_expected else "LocalStore")


def test_entries_keep_etag_and_body():
    entry = entry_for({"a": 1})
    assert Entry.unpack(entry.pack()) == entry
    assert entry.body == b'{"a":1}'


# The async detail of the reference service: hits through the async Redis client.


@pytest.mark.django_db(transaction=True)
async def test_async_detail_serves_the_cached_representation(async_client):
    from django.db import connections

    try:
        await _async_detail_checks(async_client)
    finally:  # the ORM ran in sync_to_async's thread: close its connection
        await sync_to_async(connections.close_all)()


async def _async_detail_checks(async_client):
    catalog = await sync_to_async(make_catalog)(products=3)
    product = catalog["products"][1]
    first = await async_client.get(f"/api/async/products/{product.pk}/")
    second = await async_client.get(f"/api/async/products/{product.pk}/")
    assert (first["X-Cache"], second["X-Cache"]) == ("miss", "hit")
    assert second.timing.queries == 0
    sync_detail = await sync_to_async(APIClient().get)(f"/api/products/{product.pk}/")
    assert second.content == sync_detail.content and second["ETag"] == sync_detail["ETag"]
    etag = second["ETag"]
    assert (
        await async_client.get(
            f"/api/async/products/{product.pk}/", headers={"If-None-Match": etag}
        )
    ).status_code == 304
    await sync_to_async(Product.objects.filter(pk=product.pk).update)(name="Async renamed")
    fresh = await async_client.get(f"/api/async/products/{product.pk}/")
    assert fresh.json()["name"] == "Async renamed"
    assert (await async_client.get("/api/async/products/999999/")).status_code == 404


@pytest.mark.urls(__name__)
def test_check_warns_about_method_fields_in_public_representations():
    from drf_scale.checks import check_representation_cache

    found = [m for m in check_representation_cache() if m.id == "drf_scale.W040"]
    assert [m.obj for m in found] == [ObjectCheckedViewSet, ObjectCheckedViewSet]
    assert "ViewerSerializer.viewer" in found[0].msg


def test_check_refuses_a_memory_store_shared_by_no_one(settings):
    from drf_scale.checks import check_representation_cache

    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_URL": None, "WORKERS": 4}
    assert "drf_scale.E040" in [m.id for m in check_representation_cache()]
    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_URL": "redis://127.0.0.1:6379/0"}
    assert "drf_scale.E040" not in [m.id for m in check_representation_cache()]


@pytest.mark.django_db
def test_a_detail_with_filters_is_served_by_the_view_not_the_cache(client, catalog):
    product = catalog["products"][0]
    assert detail(client, product)["X-Cache"] == "miss"
    other_brand = next(b for b in catalog["brands"] if b.pk != product.brand_id)
    filtered = client.get(f"/api/products/{product.pk}/?brand={other_brand.pk}")
    naive = client.get(f"/naive/products/{product.pk}/?brand={other_brand.pk}")
    assert filtered.status_code == naive.status_code == 404


async def _walk(async_client, url: str) -> list[dict]:
    rows = []
    while url:
        response = await async_client.get(url)
        assert response.status_code == 200, response.content
        rows += response.json()["results"]
        url = response.json()["next"]
    return rows


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "query", ["", "ordering=price&brand={brand}", "ordering=-price&count=true"]
)
async def test_async_list_pages_like_the_api(async_client, query):
    from django.db import connections

    try:
        catalog = await sync_to_async(make_catalog)(products=12)
        query = query.format(brand=catalog["brands"][1].pk)
        api = await sync_to_async(_api_walk)(f"/api/products/?page_size=5&{query}")
        cold = await _walk(async_client, f"/api/async/products/?page_size=5&{query}")
        warm = await async_client.get(f"/api/async/products/?page_size=5&{query}")
        assert cold == api and len(api) > 0
        assert warm["X-Cache"] == f"{len(warm.json()['results'])}/{len(warm.json()['results'])} hit"
        if "count" in query:
            assert warm.json()["count"] == len(api)
        for bad in ("cursor=forged", "page_size=0", "min_price=abc"):
            mine = await async_client.get(f"/api/async/products/?{bad}")
            theirs = await sync_to_async(APIClient().get)(f"/api/products/?{bad}")
            assert (mine.status_code, mine.json()) == (theirs.status_code, theirs.json())
    finally:
        await sync_to_async(connections.close_all)()


def _api_walk(url: str) -> list[dict]:
    client, rows = APIClient(), []
    while url:
        body = client.get(url).json()
        rows += body["results"]
        url = body["next"]
    return rows


@committed
def test_a_stampede_on_a_missing_key_renders_it_once(settings):
    import threading

    from django.db import connections

    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_LEASE_WAIT": 5.0}
    product = make_catalog(products=2)["products"][1]
    start, results = threading.Barrier(8), []

    def read() -> None:
        try:
            start.wait()
            response = APIClient().get(f"/api/products/{product.pk}/")
            results.append((response.status_code, response.timing.queries, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _, _ in results] == [200] * 8
    assert sorted(queries for _, queries, _ in results) == [0] * 7 + [3]  # one render
    assert len({str(body) for _, _, body in results}) == 1


@pytest.mark.django_db
def test_public_hits_are_answered_before_drf_only_for_bare_json_requests(client, catalog):
    product = catalog["products"][0]
    cold = detail(client, product)
    assert "Allow" in cold  # DRF answered the miss
    early = client.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="application/json")
    assert (early["X-Cache"], early.timing.queries, early.content) == ("hit", 0, cold.content)
    assert "Allow" not in early  # answered before DRF's request handling
    browser = client.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert browser["Content-Type"].startswith("text/html") and "Allow" in browser
    with_query = client.get(f"/api/products/{product.pk}/?format=json")
    assert "Allow" in with_query and with_query.json() == cold.json()


@pytest.mark.django_db
def test_a_bad_credential_is_a_401_whether_or_not_the_object_is_cached(client, catalog):
    """The early hit path leaves requests with credentials to DRF: the same answer as /naive/
    and as a miss, never a 200 from the cache to a client whose token is wrong."""
    product = catalog["products"][0]
    bad = {"HTTP_AUTHORIZATION": "Token not-a-real-token", "HTTP_ACCEPT": "application/json"}
    statuses = [client.get(f"/naive/products/{product.pk}/", **bad).status_code]
    statuses.append(client.get(f"/api/products/{product.pk}/", **bad).status_code)  # a miss
    assert detail(client, product)["X-Cache"] in ("hit", "miss")  # cached now, either way
    assert (
        client.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="application/json")["X-Cache"]
        == "hit"
    )
    statuses.append(client.get(f"/api/products/{product.pk}/", **bad).status_code)  # a hit
    assert statuses == [401, 401, 401]


def test_hits_before_drf_need_the_public_scope():
    with pytest.raises(ValueError, match="cache_scope"):

        class Wrong(PerUserViewSet):
            cache_hits_before_drf = True


@pytest.mark.django_db
def test_a_missing_id_leaves_nothing_in_the_store(client):
    from drf_scale.cache.redis_store import RedisStore
    from drf_scale.cache.store import LocalStore, object_key

    assert client.get("/api/products/424242/").status_code == 404
    store, key = get_store(), object_key("shop.product", 424242)
    if isinstance(store, RedisStore):
        assert store.client.exists(key) == 0
    else:
        assert isinstance(store, LocalStore) and key not in store.objects
