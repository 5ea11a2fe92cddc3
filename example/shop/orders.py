"""Placing an order: one transaction, stock taken under row locks."""

from collections import Counter
from decimal import Decimal

from django.db import transaction

from shop.errors import Conflict
from shop.models import Order, OrderLine, Product


class InsufficientStock(Conflict):
    default_code = "insufficient_stock"


def place_order(user, quantities: Counter[int]) -> tuple[Order, list[OrderLine]]:
    """Create an order for {product_id: quantity}; 409 if any product lacks stock.

    Rows are locked in id order so concurrent orders cannot deadlock, and stock
    is checked after the lock, so it never goes below zero.
    """
    with transaction.atomic():
        products = {
            p.id: p
            for p in Product.objects.select_for_update()
            .filter(id__in=quantities, status=Product.Status.ACTIVE)
            .order_by("id")
        }
        missing = sorted(set(quantities) - set(products))
        if missing:
            raise Conflict(f"Products not available for sale: {missing}.")
        short = [
            f"{products[pid].sku} (requested {qty}, available {products[pid].stock})"
            for pid, qty in sorted(quantities.items())
            if products[pid].stock < qty
        ]
        if short:
            raise InsufficientStock(f"Insufficient stock: {', '.join(short)}.")
        order = Order.objects.create(user=user)
        for pid, qty in quantities.items():
            products[pid].stock -= qty  # safe: the rows are locked until commit
        Product.objects.bulk_update(products.values(), ["stock"])
        lines = OrderLine.objects.bulk_create(
            OrderLine(order=order, product_id=pid, quantity=qty, unit_price=products[pid].price)
            for pid, qty in sorted(quantities.items())
        )
    return order, lines


def order_total(lines: list[OrderLine]) -> Decimal:
    return sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
