from django.urls import path

from tests.pagingapp import views

urlpatterns = [
    path("items/", views.ItemList.as_view()),
    path("events/", views.EventList.as_view()),
    path("events-default/", views.DefaultKeysetList.as_view()),
    path("item-pages/", views.ItemPageList.as_view()),
    path("item-offsets/", views.ItemOffsetList.as_view()),
]
