"""The paging endpoints plus one misconfigured view, for the W010/E010 check tests."""

from django.urls import include, path

from tests.pagingapp.views import ItemList


class BrokenOrderingList(ItemList):
    ordering_fields = ["score", "popularity"]


urlpatterns = [
    path("paging/", include("tests.pagingapp.urls")),
    path("broken/", BrokenOrderingList.as_view()),
]
