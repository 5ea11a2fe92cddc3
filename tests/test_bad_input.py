"""Whatever a client sends, the answer is a 4xx with a JSON error, never a 500."""

import json

import pytest
import rest_framework

from shop.models import Product

pytestmark = pytest.mark.django_db
ROUTERS = ["/naive/", "/api/"]
DRF = tuple(int(part) for part in rest_framework.VERSION.split(".")[:2])


@pytest.mark.parametrize("prefix", [*ROUTERS, "/floor/", "/ninja/"])
@pytest.mark.parametrize("page_size", ["0", "-3", "101", "abc", "1e3", ""])
def test_out_of_range_page_size_is_400(client, catalog, prefix, page_size):
    response = client.get(f"{prefix}products/?page_size={page_size}")
    assert response.status_code in (400, 422), response.content
    assert response.json()


@pytest.mark.parametrize("prefix", ["/naive/", "/floor/"])
@pytest.mark.parametrize("page", ["0", "abc", "999"])
def test_bad_page_is_404_json(client, catalog, prefix, page):
    response = client.get(f"{prefix}products/?page={page}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


@pytest.mark.parametrize(
    "cursor", ["garbage", "", "eyJ2IjoxfQ", "eyJ2IjoxfQ:forged-signature", "%00"]
)
def test_bad_cursor_is_400(client, catalog, cursor):
    response = client.get(f"/api/products/?cursor={cursor}")
    assert response.status_code == 400
    assert "cursor" in response.json()


def test_cursor_bound_to_its_filters_and_ordering(client, catalog):
    next_url = client.get("/api/products/?page_size=2&status=active").json()["next"]
    for changed in ("&status=draft", "&ordering=price"):
        response = client.get(next_url + changed)
        assert response.status_code == 400
        assert "cursor" in response.json() or "ordering" in response.json()


@pytest.mark.parametrize("prefix", [*ROUTERS, "/floor/", "/ninja/"])
@pytest.mark.parametrize("query", ["brand=x", "min_price=cheap", "status=sold", "tag=1.5"])
def test_bad_filters_are_400(client, catalog, prefix, query):
    response = client.get(f"{prefix}products/?{query}")
    assert response.status_code == 400, response.content
    assert response.json()


@pytest.mark.parametrize("prefix", ROUTERS)
@pytest.mark.parametrize(
    "body", [b"{", b'{"sku": ', b"\xff\xfe", b"[1, 2", b"null", b"[]", b'"text"']
)
def test_malformed_or_wrongly_shaped_json(staff_client, catalog, prefix, body):
    before = Product.objects.count()
    response = staff_client.generic(
        "POST", f"{prefix}products/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()
    assert Product.objects.count() == before


@pytest.mark.parametrize("prefix", ROUTERS)
def test_unsupported_media_type(staff_client, catalog, prefix):
    response = staff_client.generic("POST", f"{prefix}products/", b"<x/>", content_type="text/xml")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


@pytest.mark.parametrize("prefix", ROUTERS)
@pytest.mark.parametrize(
    "query", ["max_price=-1e-999999", "min_price=1e-16384", "max_price=1e20", "min_price=nan"]
)
def test_numbers_the_price_column_cannot_hold_are_a_400_naming_the_filter(
    client, catalog, prefix, query
):
    response = client.get(f"{prefix}products/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [query.split("=")[0]]


def test_json_nested_too_deeply_is_a_400_on_api(staff_client, catalog):
    """Past orjson's 1,024 levels and Python's recursion limit (200 KB): DRF's parser would
    recurse into a 500."""
    body = "[" * 100_000 + "]" * 100_000
    response = staff_client.generic("POST", "/api/products/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested too deeply."}


@pytest.mark.parametrize("prefix", ROUTERS)
def test_huge_payload_is_413_and_writes_nothing(staff_client, catalog, prefix):
    if prefix == "/naive/" and DRF < (3, 17):
        pytest.skip("DRF 3.16 streams JSON bodies past DATA_UPLOAD_MAX_MEMORY_SIZE; /naive/ is DRF")
    before = Product.objects.count()
    body = json.dumps(
        {"sku": "BIG", "name": "x", "price": "1.00", "description": "x" * 3_000_000,
         "brand": catalog["brands"][0].id, "category": catalog["categories"][0].id}
    )  # fmt: skip
    response = staff_client.generic(
        "POST", f"{prefix}products/", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large."}
    assert Product.objects.count() == before


@pytest.mark.parametrize("prefix", ROUTERS)
@pytest.mark.parametrize("days", ["0", "366", "-1", "week", "1.5"])
def test_top_products_days_is_validated(client, catalog, prefix, days):
    response = client.get(f"{prefix}stats/top-products/?days={days}")
    assert response.status_code == 400
    assert "days" in response.json()


@pytest.mark.parametrize("prefix", ROUTERS)
def test_wrong_types_on_patch(staff_client, catalog, prefix):
    product = catalog["products"][0]
    for payload in ({"price": [1]}, {"stock": "many"}, {"tags": "all"}, {"brand": {"id": 1}}):
        response = staff_client.patch(f"{prefix}products/{product.id}/", payload, format="json")
        assert response.status_code == 400, payload
    product.refresh_from_db()
    assert product.price == catalog["products"][0].price
