"""Placing orders: validation, stock, 409s and the race for the last unit."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from shop.models import Order, OrderLine, Product
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_order_takes_stock_and_records_prices(user_client, catalog):
    a, b = catalog["products"][0], catalog["products"][1]
    lines = [{"product": a.id, "quantity": 2}, {"product": b.id, "quantity": 1},
             {"product": a.id, "quantity": 1}]  # fmt: skip
    response = user_client.post("/api/orders/", {"lines": lines}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["lines"] == [
        {"product": a.id, "quantity": 3, "unit_price": "9.99"},
        {"product": b.id, "quantity": 1, "unit_price": "10.99"},
    ]
    assert body["total"] == "40.96"
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.stock, b.stock) == (7, 9)


def test_insufficient_stock_is_409_and_changes_nothing(user_client, catalog):
    a, b = catalog["products"][0], catalog["products"][1]
    orders = Order.objects.count()
    lines = [{"product": a.id, "quantity": 1}, {"product": b.id, "quantity": 11}]
    response = user_client.post("/naive/orders/", {"lines": lines}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "Insufficient stock: SKU-0001 (requested 11, available 10)."
    assert Order.objects.count() == orders
    assert Product.objects.get(pk=a.pk).stock == 10


def test_unknown_or_inactive_product_is_409(user_client, catalog):
    archived = catalog["products"][0]
    Product.objects.filter(pk=archived.pk).update(status=Product.Status.ARCHIVED)
    for pid in (archived.id, 999999):
        response = user_client.post(
            "/api/orders/", {"lines": [{"product": pid, "quantity": 1}]}, format="json"
        )
        assert response.status_code == 409
        assert str(pid) in response.json()["detail"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"lines": []},
        {"lines": "many"},
        {"lines": [{"product": 1}]},
        {"lines": [{"product": 1, "quantity": 0}]},
        {"lines": [{"product": "one", "quantity": 1}]},
        {"lines": [{"product": 1, "quantity": 10**9}]},
        {"lines": [{"product": 1, "quantity": 1}] * 101},
    ],
)
def test_order_validation(user_client, catalog, payload):
    orders = Order.objects.count()
    response = user_client.post("/api/orders/", payload, format="json")
    assert response.status_code == 400
    assert "lines" in response.json()
    assert Order.objects.count() == orders


def test_orders_need_a_user(client, catalog):
    response = client.post(
        "/api/orders/",
        {"lines": [{"product": catalog["products"][0].id, "quantity": 1}]},
        format="json",
    )
    assert response.status_code in (401, 403)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_orders_for_the_last_unit(catalog):
    """Real threads, real row locks: exactly one order wins, stock never below zero."""
    product = catalog["products"][5]
    Product.objects.filter(pk=product.pk).update(stock=1)
    clients = []
    for i in range(2):
        api = APIClient()
        api.force_authenticate(make_user(f"buyer{i}"))
        clients.append(api)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def buy(api: APIClient) -> None:
        barrier.wait()
        try:
            response = api.post(
                "/api/orders/", {"lines": [{"product": product.id, "quantity": 1}]}, format="json"
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(api,)) for api in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409]
    assert Product.objects.get(pk=product.pk).stock == 0
    assert OrderLine.objects.filter(product=product).count() == 1
