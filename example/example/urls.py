from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# Errors raised outside DRF's views answer JSON too (shop.errors).
handler400 = "shop.errors.bad_request"
handler404 = "shop.errors.not_found"
handler500 = "shop.errors.server_error"

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("constant/", include("shop.constant")),  # the floor of bench.cache
    path("", include("shop.urls")),
]
