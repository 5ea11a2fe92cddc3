"""ETags, 304s, If-Match (412, atomic), 428 and If-None-Match: * on /api/ products."""

import hashlib

import pytest

from drf_scale.http import if_match_passes
from shop.models import Product
from tests.test_writes import new_product

pytestmark = pytest.mark.django_db


def url(product) -> str:
    return f"/api/products/{product.pk}/"


def test_detail_etag_is_the_hash_of_the_body(client, catalog):
    response = client.get(url(catalog["products"][0]))
    digest = hashlib.blake2b(response.content, digest_size=12).hexdigest()
    assert response["ETag"] == f'"{digest}"'
    assert "s-maxage=60" in response["Cache-Control"] and "public" in response["Cache-Control"]
    assert "stale-while-revalidate=30" in response["Cache-Control"]
    assert "Accept" in response["Vary"]


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_none_match_answers_304_without_queries(client, catalog, method):
    product = catalog["products"][0]
    etag = client.get(url(product))["ETag"]
    response = getattr(client, method)(url(product), HTTP_IF_NONE_MATCH=f'"other", {etag}')
    assert response.status_code == 304
    assert response.timing.queries == 0
    assert response.content == b""
    assert (response["ETag"], response["X-Cache"]) == (etag, "hit")
    assert "public" in response["Cache-Control"] and "Accept" in response["Vary"]
    weak = client.get(url(product), HTTP_IF_NONE_MATCH=f"W/{etag}")  # weak comparison
    assert weak.status_code == 304


def test_an_other_etag_gets_the_representation(client, catalog):
    response = client.get(url(catalog["products"][0]), HTTP_IF_NONE_MATCH='"stale"')
    assert response.status_code == 200 and response.json()["id"] == catalog["products"][0].pk


def test_uncached_requests_get_the_same_etag(client, catalog, settings):
    product = catalog["products"][0]
    cached = client.get(url(product))
    settings.DRF_SCALE = {**settings.DRF_SCALE, "CACHE_ENABLED": False}
    uncached = client.get(url(product), HTTP_IF_NONE_MATCH=cached["ETag"])
    assert (uncached.status_code, uncached["X-Cache"]) == (304, "bypass")


def test_the_browsable_api_gets_no_etag(client, catalog):
    response = client.get(url(catalog["products"][0]), HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and "ETag" not in response


@pytest.mark.django_db(transaction=True)
def test_list_weak_etag_changes_with_the_collection(staff_client, client, catalog):
    first = client.get("/api/products/")
    etag = first["ETag"]
    assert etag.startswith('W/"')
    again = client.get("/api/products/", HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.timing.queries) == (304, 0)
    assert client.get("/api/products/?page_size=3", HTTP_IF_NONE_MATCH=etag).status_code == 200
    product = catalog["products"][0]
    staff_client.patch(url(product), {"name": "Changed"}, format="json")
    assert client.get("/api/products/", HTTP_IF_NONE_MATCH=etag).status_code == 200


@pytest.mark.parametrize(
    "query", ["cursor=tampered", "page_size=0", "ordering=sku", "max_price=abc", "brand=x"]
)
def test_a_bad_list_query_is_a_400_before_any_304(client, catalog, query):
    """RFC 9110: the request is validated before its preconditions answer 304."""
    assert client.get("/api/products/").status_code == 200  # a version to match
    response = client.get(f"/api/products/?{query}", HTTP_IF_NONE_MATCH="*")
    assert response.status_code == 400, response.content[:200]


def test_if_match_with_the_current_etag_writes_and_returns_the_new_etag(staff_client, catalog):
    product = catalog["products"][1]
    etag = staff_client.get(url(product))["ETag"]
    response = staff_client.patch(
        url(product), {"name": "Matched"}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200
    assert response["ETag"] != etag
    digest = hashlib.blake2b(response.content, digest_size=12).hexdigest()
    assert response["ETag"] == f'"{digest}"'


@pytest.mark.parametrize("header", ['"stale"', "W/{etag}"])
def test_if_match_with_another_or_a_weak_etag_is_412_and_writes_nothing(
    staff_client, catalog, header
):
    product = catalog["products"][1]
    etag = staff_client.get(url(product))["ETag"]
    response = staff_client.patch(
        url(product), {"name": "Lost"}, format="json", HTTP_IF_MATCH=header.format(etag=etag)
    )
    assert response.status_code == 412
    assert response.json()["detail"]
    assert Product.objects.get(pk=product.pk).name == product.name
    delete = staff_client.delete(url(product), HTTP_IF_MATCH='"stale"')
    assert delete.status_code == 412 and Product.objects.filter(pk=product.pk).exists()


def test_if_match_star_matches_an_existing_resource(staff_client, catalog):
    product = catalog["products"][1]
    response = staff_client.patch(url(product), {"name": "Star"}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200
    missing = staff_client.patch("/api/products/999999/", {"name": "x"}, HTTP_IF_MATCH="*")
    assert missing.status_code == 404


def test_if_match_can_be_required(staff_client, catalog, settings):
    settings.DRF_SCALE = {**settings.DRF_SCALE, "REQUIRE_IF_MATCH": True}
    product = catalog["products"][1]
    response = staff_client.patch(url(product), {"name": "No header"}, format="json")
    assert response.status_code == 428 and "If-Match" in response.json()["detail"]
    assert staff_client.delete(url(product)).status_code == 428
    etag = staff_client.get(url(product))["ETag"]
    ok = staff_client.patch(url(product), {"name": "Header"}, format="json", HTTP_IF_MATCH=etag)
    assert ok.status_code == 200


def test_if_none_match_star_refuses_to_overwrite(staff_client, catalog):
    product = catalog["products"][1]
    update = staff_client.patch(url(product), {"name": "x"}, format="json", HTTP_IF_NONE_MATCH="*")
    assert update.status_code == 412 and Product.objects.get(pk=product.pk).name == product.name
    duplicate = staff_client.post(
        "/api/products/", new_product(catalog, sku=product.sku), format="json",
        HTTP_IF_NONE_MATCH="*",
    )  # fmt: skip
    assert duplicate.status_code == 412
    created = staff_client.post(
        "/api/products/", new_product(catalog, sku="NEW-1"), format="json", HTTP_IF_NONE_MATCH="*"
    )
    assert created.status_code == 201 and created["ETag"].startswith('"')


def test_strong_comparison_rules():
    assert if_match_passes('"a", "b"', '"b"')
    assert not if_match_passes('W/"b"', '"b"')
    assert not if_match_passes('"b"', 'W/"b"')
    assert if_match_passes("*", '"b"') and not if_match_passes("*", None)


@pytest.mark.django_db(transaction=True)
def test_a_committed_conditional_write_stays_within_the_views_budget(staff_client, catalog):
    product = catalog["products"][1]
    etag = staff_client.get(url(product))["ETag"]
    response = staff_client.patch(
        url(product), {"name": "Budget"}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200  # QUERY_CHECKS="raise": over budget would be a 500
    assert staff_client.get(url(product)).json()["name"] == "Budget"
