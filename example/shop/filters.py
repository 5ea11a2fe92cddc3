"""Product filters and a total ordering, shared by every router."""

import django_filters
from django import forms
from rest_framework.filters import OrderingFilter

from shop.models import Product

PRODUCT_ORDERINGS = ("created_at", "price")
DEFAULT_PRODUCT_ORDERING = ("-created_at",)


class IdFilter(django_filters.NumberFilter):
    """A primary key: a whole number, not a decimal."""

    field_class = forms.IntegerField


class ProductFilter(django_filters.FilterSet):
    brand = IdFilter(field_name="brand_id")
    category = IdFilter(field_name="category_id")
    tag = IdFilter(field_name="tags")
    status = django_filters.ChoiceFilter(choices=Product.Status.choices)
    # Bounded as the column is: a value the database cannot hold is a 400, not a DataError.
    min_price = django_filters.NumberFilter(
        field_name="price", lookup_expr="gte", max_digits=10, decimal_places=2
    )
    max_price = django_filters.NumberFilter(
        field_name="price", lookup_expr="lte", max_digits=10, decimal_places=2
    )

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
