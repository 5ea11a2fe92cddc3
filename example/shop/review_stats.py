"""Review count and average rating of a product, as annotations (one subquery each)."""

from django.db.models import Avg, Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from shop.models import Review


def _per_product(aggregate) -> Subquery:
    """A subquery computing ``aggregate`` over the reviews of the outer product."""
    return Subquery(
        Review.objects.filter(product=OuterRef("pk"))
        .order_by()
        .values("product")
        .annotate(value=aggregate)
        .values("value")
    )


REVIEW_STATS = {
    "review_count": Coalesce(_per_product(Count("*")), Value(0), output_field=IntegerField()),
    "rating_avg": _per_product(Avg("rating")),
}


def rounded_rating(avg) -> float | None:
    """The contract's rating: two decimals, rounded in Python (the same on every database)."""
    return None if avg is None else round(float(avg), 2)
