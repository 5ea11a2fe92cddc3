"""Product filters and a total ordering, shared by every router."""

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework.filters import OrderingFilter

from shop.models import MAX_ID, Product

PRODUCT_ORDERINGS = ("created_at", "price")
DEFAULT_PRODUCT_ORDERING = ("-created_at",)


@extend_schema_field({"type": "integer", "format": "int64", "minimum": -MAX_ID - 1,
                      "maximum": MAX_ID})  # fmt: skip
class IdFilter(django_filters.NumberFilter):
    """A primary key: a whole number the column can hold, not a decimal."""

    field_class = forms.IntegerField

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=-MAX_ID - 1, max_value=MAX_ID, **kwargs)


# The price column's bounds, as the schema states them: at most 8 digits, then 2 decimals.
PRICE_PATTERN = r"^-?(?:\d{1,8}(?:\.\d{0,2})?|\.\d{1,2})$"
PRICE = {"type": "string", "format": "decimal", "pattern": PRICE_PATTERN}


@extend_schema_field(PRICE)
class PriceFilter(django_filters.NumberFilter):
    """A price: a decimal the column can hold (else a 400), not a DataError."""

    def __init__(self, **kwargs) -> None:
        super().__init__(field_name="price", max_digits=10, decimal_places=2, **kwargs)


class ProductFilter(django_filters.FilterSet):
    brand = IdFilter(field_name="brand_id")
    category = IdFilter(field_name="category_id")
    tag = IdFilter(field_name="tags")
    status = django_filters.ChoiceFilter(choices=Product.Status.choices)
    # Bounded as the column is: a value the database cannot hold is a 400, not a DataError.
    min_price = PriceFilter(lookup_expr="gte")
    max_price = PriceFilter(lookup_expr="lte")

    class Meta:
        model = Product
        fields = ["brand", "category", "tag", "status", "min_price", "max_price"]


def with_tiebreak(ordering: list[str] | tuple[str, ...]) -> list[str]:
    """Append the primary key, in the direction of the last field, to make it total."""
    last = ordering[-1] if ordering else "id"
    return [*ordering, "-id" if last.startswith("-") else "id"]


class TotalOrderingFilter(OrderingFilter):
    """OrderingFilter whose ordering always ends with the primary key."""

    def get_ordering(self, request, queryset, view):
        return with_tiebreak(super().get_ordering(request, queryset, view) or [])
