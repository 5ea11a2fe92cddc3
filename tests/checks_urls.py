"""Views whose get_serializer_class() reads the request, for checks W001, W002, W032, W033.

The system checks build each view as a GET list or retrieve request by an anonymous user
sees it: the /by-user/ views answer for it and are checked; the /by-pk/ views read a URL
argument the checks cannot give, and are named as views the checks could not inspect.
"""

from typing import Any

from rest_framework import serializers, viewsets
from rest_framework.routers import SimpleRouter
from rest_framework.serializers import BaseSerializer

from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin
from tests.testapp.models import Product
from tests.testapp.serializers import OpaqueProductSerializer, ProductSerializer


class ShoutingSerializer(serializers.ModelSerializer):
    """Two method fields without a @batch hint: two reasons its plan falls back."""

    shout = serializers.SerializerMethodField()
    whisper = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "shout", "whisper"]

    def get_shout(self, product: Product) -> str:
        return product.name.upper()

    def get_whisper(self, product: Product) -> str:
        return product.name.lower()


class ByUserPlanned(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ProductSerializer if self.request.user.is_staff else OpaqueProductSerializer


class ByUserFast(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.request.query_params.get("full"):
            return ProductSerializer
        return ShoutingSerializer


class ByPkPlanned(OptimizedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ProductSerializer if int(self.kwargs["pk"]) else OpaqueProductSerializer


class ByPkFast(FastReadMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()

    def get_serializer_class(self) -> type[BaseSerializer]:
        return ProductSerializer if int(self.kwargs["pk"]) else ShoutingSerializer


router = SimpleRouter()
router.register("by-user/planned", ByUserPlanned, basename="by-user-planned")
router.register("by-user/fast", ByUserFast, basename="by-user-fast")
router.register("by-pk/planned", ByPkPlanned, basename="by-pk-planned")
router.register("by-pk/fast", ByPkFast, basename="by-pk-fast")
urlpatterns = router.urls
