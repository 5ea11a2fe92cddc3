"""URL names for the hyperlinked serializers (ROOT_URLCONF of the link tests): plain and
format-suffixed patterns, an int converter, a str converter, a regex, and a namespace."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from rest_framework.urlpatterns import format_suffix_patterns


def detail(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return HttpResponse()


patterns = [
    path("devices/<int:pk>/", detail, name="device-detail"),
    path("gadgets/<pk>/", detail, name="gadget-detail"),
    path("gadgets/by-name/<str:name>/", detail, name="gadget-by-name"),
    re_path(r"^labels/(?P<slug_value>[^/.]+)/$", detail, name="label-detail"),
]
urlpatterns = format_suffix_patterns([*patterns, path("ns/", include((patterns, "links")))])
