"""One contract, four implementations: /naive/, /api/, /floor/ and /ninja/ agree.

/api/ lists products by cursor instead of page number: its pages, walked to the end,
hold exactly what the page-number routers list, in the same order.
"""

import pytest

ROUTERS = ["/naive/", "/api/", "/floor/", "/ninja/"]
PAGE_NUMBER_ROUTERS = ["/naive/", "/floor/", "/ninja/"]
LIST_QUERIES = [
    "",
    "?page_size=5",
    "?ordering=price",
    "?ordering=-price",
    "?ordering=created_at",
    "?brand={brand}",
    "?category={category}&ordering=price",
    "?tag={tag}",
    "?status=active&min_price=12&max_price=15.5",
]


def with_ids(query: str, catalog) -> str:
    return query.format(
        brand=catalog["brands"][1].id,
        category=catalog["categories"][1].id,
        tag=catalog["tags"][0].id,
    )


def normalized(body: dict, prefix: str) -> dict:
    """A page with its links made router-independent."""
    return {
        **body,
        "next": body["next"] and body["next"].replace(prefix, "/"),
        "previous": body["previous"] and body["previous"].replace(prefix, "/"),
    }


@pytest.mark.parametrize(
    "query", [*LIST_QUERIES, "?page_size=5&page=2", "?page_size=5&page=3&ordering=price"]
)
def test_list_is_identical_on_page_number_routers(client, catalog, query):
    query = with_ids(query, catalog)
    bodies = {}
    for prefix in PAGE_NUMBER_ROUTERS:
        response = client.get(f"{prefix}products/{query}")
        assert response.status_code == 200, (prefix, response.content)
        bodies[prefix] = normalized(response.json(), prefix)
    naive = bodies["/naive/"]
    assert naive["results"], "the query should match some products"
    for prefix, body in bodies.items():
        assert body == naive, prefix


def all_pages(client, url: str) -> list[dict]:
    """Every result of a list, following ``next`` links to the end."""
    results = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        results += body["results"]
        url = body["next"]
    return results


@pytest.mark.parametrize("query", [q for q in LIST_QUERIES if "page_size" not in q])
def test_api_cursor_pages_hold_the_naive_list(client, catalog, query):
    query = with_ids(query, catalog)
    joiner = "&" if query else "?"
    naive = client.get(f"/naive/products/{query}{joiner}page_size=100").json()["results"]
    assert naive, "the query should match some products"
    walked = all_pages(client, f"/api/products/{query}{joiner}page_size=4")
    assert walked == naive


def test_api_first_page_and_count(client, catalog):
    body = client.get("/api/products/?page_size=5").json()
    assert list(body) == ["next", "previous", "results"]
    assert body["results"] == client.get("/naive/products/?page_size=5").json()["results"]
    counted = client.get("/api/products/?page_size=5&count=true").json()
    assert (counted["count"], counted["count_is_estimate"]) == (12, False)


def test_list_shape(client, catalog):
    body = client.get("/naive/products/?page_size=2").json()
    assert body["count"] == 12
    assert body["next"] == "http://testserver/naive/products/?page=2&page_size=2"
    first = body["results"][0]
    assert list(first) == [
        "id", "sku", "name", "price", "status", "brand", "category", "tags",
        "review_count", "rating_avg", "created_at", "updated_at",
    ]  # fmt: skip
    # Newest first, ties broken by id descending.
    assert [r["sku"] for r in body["results"]] == ["SKU-0011", "SKU-0010"]
    assert first["price"] == "20.99"
    assert first["created_at"] == "2026-01-01T12:05:00.123456Z"
    assert first["category"] == {
        "id": catalog["categories"][2].id,
        "name": "Child 1",
        "parent": catalog["categories"][0].id,
    }


def test_review_stats(client, catalog):
    product = catalog["products"][3]  # three reviews, ratings 4, 5, 1
    body = client.get(f"/naive/products/{product.id}/").json()
    assert body["review_count"] == 3
    assert body["rating_avg"] == 3.33
    no_reviews = client.get(f"/naive/products/{catalog['products'][0].id}/").json()
    assert (no_reviews["review_count"], no_reviews["rating_avg"]) == (0, None)


def test_detail_is_identical_on_every_router(client, catalog):
    for product in catalog["products"][:5]:
        bodies = [client.get(f"{prefix}products/{product.id}/") for prefix in ROUTERS]
        assert all(r.status_code == 200 for r in bodies)
        assert all(r.json() == bodies[0].json() for r in bodies)
    detail = client.get(f"/naive/products/{catalog['products'][3].id}/").json()
    assert detail["description"] == "Description of product 3."
    assert [r["title"] for r in detail["latest_reviews"]] == ["T3.2", "T3.1", "T3.0"]
    assert detail["latest_reviews"][0]["user"] == {
        "id": catalog["users"][2].id,
        "username": "user2",
    }


def test_latest_reviews_keeps_five(client, db):
    from tests.factories import make_catalog

    catalog = make_catalog(products=7, reviews_per_product=6)
    product = catalog["products"][6]  # six reviews
    body = client.get(f"/api/products/{product.id}/").json()
    assert body["review_count"] == 6
    assert len(body["latest_reviews"]) == 5


@pytest.mark.parametrize("prefix", ["/naive/", "/api/", "/floor/", "/ninja/"])
def test_unknown_product_is_404(client, catalog, prefix):
    response = client.get(f"{prefix}products/999999/")
    assert response.status_code == 404
    assert response.json()


@pytest.mark.parametrize("resource", ["brands", "categories", "tags"])
def test_reference_lists(client, catalog, resource):
    body = client.get(f"/api/{resource}/").json()
    assert body["count"] == len(catalog[resource if resource != "categories" else "categories"])
    assert body == client.get(f"/naive/{resource}/").json() | {
        "next": None,
        "previous": None,
    }


def test_server_timing_header_counts_queries(client, catalog):
    response = client.get("/floor/products/?page_size=5")
    header = response.headers["Server-Timing"]
    assert f'desc="{response.timing.queries} queries"' in header
    assert response.timing.queries == 3  # count, rows with review stats, tags
    assert header.startswith("db;dur=") and ", app;dur=" in header
