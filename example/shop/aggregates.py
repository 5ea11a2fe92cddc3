"""The shop's aggregates, precomputed on Celery and served on /api/stats/."""

from drf_scale.aggregates import aggregate
from shop import stats
from shop.models import Category, Order, OrderLine, Product

#: The tables the sales queries read: a write to any of them refreshes the results.
SALES_TABLES = [Order, OrderLine, Product, Category]


@aggregate("category-sales", refresh_every=60, max_age=300, depends_on=SALES_TABLES)
def category_sales() -> list[dict]:
    """Revenue, units and orders per category over the last 30 days."""
    return stats.category_sales(days=30)


@aggregate(
    "top-products",
    refresh_every=60,
    max_age=300,
    depends_on=SALES_TABLES,
    params={"days": range(1, 366)},
    hot=[{"days": 7}, {"days": 30}],
)
def top_products(days: int = 30) -> list[dict]:
    """The 10 best sellers by units over the last ``days`` days."""
    return stats.top_products(days)
