"""Routes of the shop: /naive/ and /api/ serve one contract; /floor/ and /ninja/ are bench peers."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from shop import api_views, async_views, floor, views
from shop.ninja_api import api as ninja_api


def build_router(product_views) -> DefaultRouter:
    router = DefaultRouter()
    router.register("products", product_views.ProductViewSet, basename="product")
    router.register("brands", product_views.BrandViewSet, basename="brand")
    router.register("categories", product_views.CategoryViewSet, basename="category")
    router.register("tags", product_views.TagViewSet, basename="tag")
    router.register("orders", product_views.OrderViewSet, basename="order")
    return router


def api_routes(product_views, namespace: str) -> tuple:
    routes = [
        path("stats/categories/", product_views.CategoryStatsView.as_view()),
        path("stats/top-products/", product_views.TopProductsView.as_view()),
        *build_router(product_views).urls,
    ]
    return (routes, namespace)


urlpatterns = [
    path("naive/", include(api_routes(views, "naive"))),
    path("api/", include(api_routes(api_views, "api"))),
    path("api/products/<int:pk>/shipping-quote/", async_views.shipping_quote),
    path("api/async/products/", async_views.product_list),
    path("api/async/products/<int:pk>/", async_views.product_detail),
    path("floor/products/", floor.product_list),
    path("floor/products/<int:pk>/", floor.product_detail),
    path("ninja/", ninja_api.urls),
]
