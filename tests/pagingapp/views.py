"""List endpoints over the paging models, one per paginator."""

from rest_framework import generics, serializers

from drf_scale.pagination import (
    EstimatedCountLimitOffsetPagination,
    EstimatedCountPageNumberPagination,
    KeysetPagination,
)
from tests.pagingapp.models import Event, Item


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ["id", "category", "rank", "score", "created", "name"]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "at", "amount"]


class ItemKeyset(KeysetPagination):
    page_size = 5
    page_size_query_param = "page_size"
    max_page_size = 50


class ItemList(generics.ListAPIView):
    queryset = Item.objects.all()
    serializer_class = ItemSerializer
    pagination_class = ItemKeyset
    ordering_fields = ["score", "created", "rank", "name"]
    ordering = ["-created"]

    def get_queryset(self):
        queryset = super().get_queryset()
        category = self.request.query_params.get("category")
        if category is not None:
            queryset = queryset.filter(category=int(category))
        return queryset


class EventKeyset(KeysetPagination):
    page_size_query_param = "page_size"


class EventList(generics.ListAPIView):
    queryset = Event.objects.all()
    serializer_class = EventSerializer
    pagination_class = EventKeyset
    ordering_fields = ["at", "amount"]
    ordering = ["-at"]


class DefaultKeysetList(generics.ListAPIView):
    """KeysetPagination as it comes: DRF's PAGE_SIZE, no page-size parameter."""

    queryset = Event.objects.all()
    serializer_class = EventSerializer
    pagination_class = KeysetPagination


class ItemPages(EstimatedCountPageNumberPagination):
    page_size = 5
    page_size_query_param = "page_size"
    max_page_size = 50
    max_offset = 100


class ItemPageList(ItemList):
    pagination_class = ItemPages

    def get_queryset(self):
        return super().get_queryset().order_by("-created", "-id")


class ItemOffsets(EstimatedCountLimitOffsetPagination):
    default_limit = 5
    max_limit = 50
    max_offset = 100


class ItemOffsetList(ItemPageList):
    pagination_class = ItemOffsets
