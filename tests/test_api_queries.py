"""/api/ runs a fixed number of queries whatever the page size; /naive/ does not."""

import pytest

from tests.factories import make_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_catalog(db):
    return make_catalog(products=30, reviews_per_product=3)


@pytest.mark.parametrize("size", [1, 20])
def test_api_list_queries_do_not_grow(client, big_catalog, size, on_postgres):
    cold = client.get(f"/api/products/?page_size={size}")
    assert cold.status_code == 200
    # The page's keys; rows with review stats, tags: no COUNT. On PostgreSQL the database
    # writes the rows' JSON (render_in_database), tags included: one query fewer.
    assert cold.timing.queries == (2 if on_postgres else 3)
    warm = client.get(f"/api/products/?page_size={size}")
    assert warm["X-Cache"] == f"{size}/{size} hit"
    assert warm.timing.queries == 1  # the page's keys; the rows come from the cache
    counted = client.get(f"/api/products/?page_size={size}&count=true")
    # and the count, when asked: on PostgreSQL an estimate first, exact below 10,000 rows
    assert counted.timing.queries == (3 if on_postgres else 2)


def test_api_detail_queries(client, big_catalog):
    product = big_catalog["products"][3]
    response = client.get(f"/api/products/{product.id}/")
    assert len(response.json()["latest_reviews"]) == 3
    assert response.timing.queries == 3  # row with review stats, tags, latest reviews + users
    cached = client.get(f"/api/products/{product.id}/")
    assert (cached["X-Cache"], cached.timing.queries) == ("hit", 0)
    assert cached.json() == response.json()


def test_naive_list_queries_grow_with_page_size(client, big_catalog):
    small = client.get("/naive/products/?page_size=1").timing.queries
    large = client.get("/naive/products/?page_size=20").timing.queries
    assert large - small == 19 * 5  # brand, category, tags, review count, average: per row
