"""/api/ runs a fixed number of queries whatever the page size; /naive/ does not."""

import pytest

from tests.factories import make_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_catalog(db):
    return make_catalog(products=30, reviews_per_product=3)


@pytest.mark.parametrize("size", [1, 20])
def test_api_list_queries_do_not_grow(client, big_catalog, size, on_postgres):
    response = client.get(f"/api/products/?page_size={size}")
    assert response.status_code == 200
    assert response.timing.queries == 2  # rows with review stats, tags: no COUNT
    counted = client.get(f"/api/products/?page_size={size}&count=true")
    # and the count, when asked: on PostgreSQL an estimate first, exact below 10,000 rows
    assert counted.timing.queries == (4 if on_postgres else 3)


def test_api_detail_queries(client, big_catalog):
    product = big_catalog["products"][3]
    response = client.get(f"/api/products/{product.id}/")
    assert len(response.json()["latest_reviews"]) == 3
    assert response.timing.queries == 3  # row with review stats, tags, latest reviews + users


def test_naive_list_queries_grow_with_page_size(client, big_catalog):
    small = client.get("/naive/products/?page_size=1").timing.queries
    large = client.get("/naive/products/?page_size=20").timing.queries
    assert large - small == 19 * 5  # brand, category, tags, review count, average: per row
