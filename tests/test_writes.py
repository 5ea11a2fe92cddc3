"""Product writes, reviews and permissions (the same on both routers)."""

import pytest

from shop.models import Product, Review

pytestmark = pytest.mark.parametrize("prefix", ["/naive/", "/api/"])


def new_product(catalog, **overrides) -> dict:
    return {
        "sku": "NEW-1",
        "name": "New",
        "price": "5.00",
        "stock": 3,
        "brand": catalog["brands"][0].id,
        "category": catalog["categories"][1].id,
        "tags": [catalog["tags"][0].id, catalog["tags"][2].id],
        **overrides,
    }


def test_staff_creates_and_gets_the_read_representation(staff_client, catalog, prefix):
    response = staff_client.post(f"{prefix}products/", new_product(catalog), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["brand"] == {"id": catalog["brands"][0].id, "name": "Brand 0"}
    assert [t["name"] for t in body["tags"]] == ["tag-0", "tag-2"]
    assert body["latest_reviews"] == [] and body["review_count"] == 0
    assert staff_client.get(f"{prefix}products/{body['id']}/").json() == body


def test_update_and_partial_update(staff_client, catalog, prefix):
    product = catalog["products"][1]
    url = f"{prefix}products/{product.id}/"
    put = staff_client.put(url, new_product(catalog, sku=product.sku, tags=[]), format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["tags"] == [] and put.json()["price"] == "5.00"
    patch = staff_client.patch(url, {"price": "7.25"}, format="json")
    assert patch.status_code == 200
    assert patch.json()["price"] == "7.25" and patch.json()["name"] == "New"


def test_delete(staff_client, catalog, prefix):
    product = catalog["products"][2]
    assert staff_client.delete(f"{prefix}products/{product.id}/").status_code == 204
    assert not Product.objects.filter(pk=product.pk).exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": "0"}, "price"),
        ({"price": "-1.00"}, "price"),
        ({"price": "abc"}, "price"),
        ({"sku": "SKU-0001"}, "sku"),
        ({"brand": 999999}, "brand"),
        ({"category": "x"}, "category"),
        ({"tags": [999999]}, "tags"),
        ({"status": "sold"}, "status"),
        ({"stock": -1}, "stock"),
    ],
)
def test_write_validation(staff_client, catalog, prefix, overrides, field):
    before = Product.objects.count()
    response = staff_client.post(
        f"{prefix}products/", new_product(catalog, **overrides), format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert Product.objects.count() == before


def test_anonymous_and_customers_cannot_write(client, user_client, catalog, prefix):
    product = catalog["products"][0]
    for api in (client, user_client):
        assert api.post(f"{prefix}products/", new_product(catalog), format="json").status_code in (
            401,
            403,
        )
        assert api.patch(f"{prefix}products/{product.id}/", {"name": "x"}).status_code in (401, 403)
        assert api.delete(f"{prefix}products/{product.id}/").status_code in (401, 403)
    product.refresh_from_db()
    assert product.name == "Product 0"


def test_reviews_list_and_post(client, user_client, user, catalog, prefix):
    product = catalog["products"][0]
    url = f"{prefix}products/{product.id}/reviews/"
    assert client.post(url, {"rating": 5, "title": "x"}, format="json").status_code in (401, 403)
    created = user_client.post(url, {"rating": 5, "title": "Great", "body": "!"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["user"] == {"id": user.id, "username": "alice"}
    again = user_client.post(url, {"rating": 4, "title": "Again"}, format="json")
    assert again.status_code == 400
    assert "already reviewed" in again.json()["detail"]
    assert Review.objects.filter(product=product, user=user).count() == 1
    page = client.get(url).json()
    assert page["count"] == 1 and page["results"][0]["title"] == "Great"
    detail = client.get(f"{prefix}products/{product.id}/").json()
    assert (detail["review_count"], detail["rating_avg"]) == (1, 5.0)


@pytest.mark.parametrize("rating", [0, 6, "five", None])
def test_review_rating_is_validated(user_client, catalog, prefix, rating):
    url = f"{prefix}products/{catalog['products'][0].id}/reviews/"
    response = user_client.post(url, {"rating": rating, "title": "x"}, format="json")
    assert response.status_code == 400
    assert "rating" in response.json()
