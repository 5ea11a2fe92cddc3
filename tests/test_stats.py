"""Sales aggregates: values and windows."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from shop.models import Order, OrderLine

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(catalog):
    """Three recent orders and one old one (outside every window but 365 days)."""
    cache.clear()  # /api/ serves precomputed results: start from none
    users, products = catalog["users"], catalog["products"]
    OrderLine.objects.all().delete()
    Order.objects.all().delete()
    for user, days_ago, lines in [
        (users[0], 1, [(products[0], 2), (products[1], 1)]),
        (users[1], 5, [(products[0], 1), (products[2], 4)]),
        (users[2], 20, [(products[3], 1)]),
        (users[0], 200, [(products[2], 50)]),
    ]:
        order = Order.objects.create(user=user)
        Order.objects.filter(pk=order.pk).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )
        for product, qty in lines:
            OrderLine.objects.create(
                order=order, product=product, quantity=qty, unit_price=product.price
            )
    return catalog


def get_stats(client, url: str):
    """The stats of ``url``: /naive/ answers the list, /api/ wraps it with its age."""
    body = client.get(url).json()
    return body["results"] if url.startswith("/api/") else body


@pytest.mark.parametrize("prefix", ["/naive/", "/api/"])
def test_category_sales(client, sales, prefix):
    body = get_stats(client, f"{prefix}stats/categories/")
    root, child0, child1 = sales["categories"]
    # products 0 and 3 are in the root, 1 in child 0, 2 in child 1 (i % 3).
    assert body == [
        {"category": {"id": child1.id, "name": "Child 1"}, "revenue": "47.96", "units": 4,
         "orders": 1},
        {"category": {"id": root.id, "name": "Root"}, "revenue": "42.96", "units": 4,
         "orders": 3},
        {"category": {"id": child0.id, "name": "Child 0"}, "revenue": "10.99", "units": 1,
         "orders": 1},
    ]  # fmt: skip


@pytest.mark.parametrize("prefix", ["/naive/", "/api/"])
def test_top_products_window(client, sales, prefix):
    week = get_stats(client, f"{prefix}stats/top-products/?days=7")
    assert [(r["product"]["sku"], r["units"]) for r in week] == [
        ("SKU-0002", 4), ("SKU-0000", 3), ("SKU-0001", 1),
    ]  # fmt: skip
    assert week[0]["revenue"] == str(Decimal("11.99") * 4)
    year = get_stats(client, f"{prefix}stats/top-products/?days=365")
    assert year[0] == {
        "product": {"id": sales["products"][2].id, "sku": "SKU-0002", "name": "Product 2"},
        "units": 54,
        "revenue": "647.46",
    }
    assert (
        client.get(f"{prefix}stats/top-products/").json()
        == client.get(f"{prefix}stats/top-products/?days=30").json()
    )
