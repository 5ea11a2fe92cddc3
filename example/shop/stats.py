"""Sales aggregates over recent orders (computed per call)."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from shop.models import OrderLine

CENT = Decimal("0.01")


def _recent_lines(days: int):
    since = timezone.now() - timedelta(days=days)
    revenue = ExpressionWrapper(
        F("quantity") * F("unit_price"), output_field=DecimalField(max_digits=14, decimal_places=2)
    )
    return OrderLine.objects.filter(order__created_at__gte=since), revenue


def category_sales(days: int = 30) -> list[dict]:
    """Revenue, units and distinct orders per category over the last `days` days."""
    lines, revenue = _recent_lines(days)
    rows = (
        lines.values("product__category_id", "product__category__name")
        .annotate(revenue=Sum(revenue), units=Sum("quantity"), orders=Count("order", distinct=True))
        .order_by("-revenue", "product__category_id")
    )
    return [
        {
            "category": {"id": r["product__category_id"], "name": r["product__category__name"]},
            "revenue": str(Decimal(r["revenue"]).quantize(CENT)),
            "units": r["units"],
            "orders": r["orders"],
        }
        for r in rows
    ]


def top_products(days: int, limit: int = 10) -> list[dict]:
    """The `limit` best-selling products by units over the last `days` days."""
    lines, revenue = _recent_lines(days)
    rows = (
        lines.values("product_id", "product__sku", "product__name")
        .annotate(units=Sum("quantity"), revenue=Sum(revenue))
        .order_by("-units", "product_id")[:limit]
    )
    return [
        {
            "product": {
                "id": r["product_id"],
                "sku": r["product__sku"],
                "name": r["product__name"],
            },
            "units": r["units"],
            "revenue": str(Decimal(r["revenue"]).quantize(CENT)),
        }
        for r in rows
    ]
