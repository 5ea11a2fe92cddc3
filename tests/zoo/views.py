"""One view per shape: drf_scale's ``ScaleReadOnlyModelViewSet`` and the same view on DRF's
``ReadOnlyModelViewSet`` (the reference), both paged by DRF's ``LimitOffsetPagination``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet
from rest_framework import viewsets
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.serializers import BaseSerializer

from drf_scale.viewsets import ScaleReadOnlyModelViewSet
from tests.fastapp.models import Device as Gadgetry
from tests.fastapp.models import Gadget
from tests.testapp.models import Device, Remark
from tests.zoo import serializers as zoo


class PassesUser:
    """A view handing the request's user to the serializer, as permission-aware bases take."""

    request: Any

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("user", self.request.user)
        return super().get_serializer(*args, **kwargs)  # type: ignore[misc]


class AnnotatesRemarkCount:
    """A view whose get_queryset adds an annotation the serializer reads. A GROUP BY drops
    Meta.ordering (Django), so the view orders the rows itself, through the foreign key."""

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()  # type: ignore[misc]
        return queryset.annotate(remark_count=Count("remarks")).order_by("maker", "name")


# What every shape runs under: the zoo's URL names (hyperlinks) and a MEDIA_URL (files).
SETTINGS = {"ROOT_URLCONF": "tests.zoo.urls", "MEDIA_URL": "/media/", "ALLOWED_HOSTS": ["*"]}


@dataclass(frozen=True)
class Shape:
    name: str
    serializer: type[BaseSerializer]
    queryset: Any  # a queryset or a manager, as the view declares it
    query: dict[str, str] = field(default_factory=dict)  # the request's parameters
    hooks: tuple[type, ...] = ()  # the view's own methods
    paginated: bool = True  # DRF's LimitOffsetPagination; else the whole list

    def view(self, scale: bool) -> type:
        """The view class of this shape: drf_scale's, or DRF's when ``scale`` is False."""
        base = ScaleReadOnlyModelViewSet if scale else viewsets.ReadOnlyModelViewSet
        kind = "Scale" if scale else "DRF"
        title = "".join(word.title() for word in self.name.replace("-", " ").split())
        attrs = {
            "queryset": self.queryset,
            "serializer_class": self.serializer,
            "pagination_class": LimitOffsetPagination if self.paginated else None,
            "__module__": __name__,
        }
        return type(f"{title}{kind}ViewSet", (*self.hooks, base), attrs)


SHAPES = [
    Shape("hyperlinked", zoo.HyperlinkedDeviceSerializer, Device.objects.all()),
    Shape("hyperlinked to-many", zoo.HyperlinkedGadgetrySerializer, Gadgetry.objects.all()),
    Shape(
        "dynamic fields",
        zoo.DynamicDeviceSerializer,
        Device.objects.all(),
        query={"fields": "id,name,series,family"},
    ),
    Shape("dynamic omit", zoo.DynamicDeviceSerializer, Device.objects.all(), {"omit": "series"}),
    Shape(
        "permission-aware user=",
        zoo.PermissionAwareGadgetrySerializer,
        Gadgetry.objects.all(),
        hooks=(PassesUser,),
    ),
    Shape("per-user @batch", zoo.BatchedCanChangeSerializer, Gadgetry.objects.all()),
    Shape("per-user method", zoo.CanChangeSerializer, Gadgetry.objects.all()),
    Shape("list_serializer_class", zoo.NumberedDeviceSerializer, Device.objects.all()),
    Shape("to_representation", zoo.RemarkedDeviceSerializer, Device.objects.all()),
    Shape("generic foreign key", zoo.RemarkSerializer, Remark.objects.all()),
    Shape("generic relation", zoo.DeviceRemarksSerializer, Device.objects.all()),
    Shape("files and custom field", zoo.GadgetryFilesSerializer, Gadgetry.objects.all()),
    Shape("properties and __str__", zoo.DeviceStringsSerializer, Device.objects.all()),
    Shape(
        "view annotation",
        zoo.DeviceRemarkCountSerializer,
        Device.objects.all(),
        hooks=(AnnotatesRemarkCount,),
    ),
    Shape("ordering through FKs", zoo.DeviceSerializer, Device.objects.all()),
    # DRF's paginators slice the queryset, which a manager is not: as apps write it, unpaged.
    Shape("manager queryset", zoo.DeviceMakerNameSerializer, Device.objects, paginated=False),
    Shape("custom related field", zoo.RemarkTypeSerializer, Remark.objects.all()),
    Shape("custom related fields, many", zoo.GadgetryLabelsSerializer, Gadgetry.objects.all()),
    Shape("display and brief nested", zoo.DisplayedDeviceSerializer, Device.objects.all()),
    Shape("custom fields list", zoo.CustomFieldsGadgetSerializer, Gadget.objects.order_by("-id")),
]
BY_NAME = {shape.name: shape for shape in SHAPES}
