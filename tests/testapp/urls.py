"""/api/: planned and clean. /naive/: plain DRF, with N+1s. /checks/: routes with findings."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter, SimpleRouter

from tests.testapp import views

api = DefaultRouter()
api.register("products", views.ProductViewSet, basename="product")
api.register("brands", views.BrandViewSet, basename="brand")

naive = SimpleRouter()
naive.register("products", views.NaiveProductViewSet, basename="naive-product")

checks = SimpleRouter()
checks.register("categories", views.CategoryViewSet, basename="category")
checks.register("opaque", views.OpaqueProductViewSet, basename="opaque-product")

private = SimpleRouter()
private.register("brands", views.PrivateBrandViewSet, basename="private-brand")

urlpatterns = [
    path("api/", include(api.urls)),
    path("naive/", include(naive.urls)),
    path("checks/", include(checks.urls)),
    path("checks/names/", views.product_names, name="product-names"),
    path("private/", include(private.urls)),
]
