"""Rows that hold the key of the root they are embedded in: moving one to another root
invalidates both roots, the one it left and the one it joined."""

import pytest
from rest_framework import serializers

from drf_scale.cache.invalidation import Dependency, registry
from drf_scale.cache.store import Entry
from drf_scale.cache.views import RepresentationCache
from tests.testapp.data import make_catalog
from tests.testapp.models import Product, Warranty

pytestmark = pytest.mark.django_db(transaction=True)  # invalidations run after the commit


class WarrantySerializer(serializers.ModelSerializer):
    class Meta:
        model = Warranty
        fields = ["id", "years"]


class ProductWarrantySerializer(serializers.ModelSerializer):
    warranty = WarrantySerializer(allow_null=True)

    class Meta:
        model = Product
        fields = ["id", "name", "warranty"]


def test_a_reverse_one_to_one_row_holds_the_pointer():
    assert Dependency(Product, "warranty").holds_pointer


def test_moving_a_warranty_invalidates_the_product_it_left():
    registry.register(ProductWarrantySerializer)
    make_catalog(4)
    warranty = Warranty.objects.select_related("product").first()
    assert warranty is not None
    left = warranty.product
    joined = Product.objects.filter(warranty__isnull=True).first()
    cache = RepresentationCache(ProductWarrantySerializer, "public")
    for product in (left, joined):
        cache.fetch(product.pk, lambda p=product: ProductWarrantySerializer(p).data)
    assert all(isinstance(found, Entry) for found in cache.peek([left.pk, joined.pk]))
    warranty.product = joined
    warranty.save()
    assert cache.peek([left.pk, joined.pk]) == [None, None]
