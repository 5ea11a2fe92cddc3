"""URL names the zoo's hyperlinks reverse (testapp's Device, Maker, Series; fastapp's Device)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def detail(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return HttpResponse()


urlpatterns = [
    path("devices/<int:pk>/", detail, name="device-detail"),
    path("makers/<int:pk>/", detail, name="maker-detail"),
    path("series/<int:pk>/", detail, name="series-detail"),
    path("gadgets/<int:pk>/", detail, name="gadget-detail"),
    path("labels/<int:pk>/", detail, name="label-detail"),
]
