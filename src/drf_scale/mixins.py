"""View mixins: reads through compiled plans, and separate read and write serializers.

class ProductViewSet(
    FastReadMixin, ReadWriteSerializerMixin, OptimizedQuerysetMixin, viewsets.ModelViewSet
):
    read_serializer_class = ProductSerializer
    read_serializer_classes = {"retrieve": ProductDetailSerializer}
    write_serializer_class = ProductWriteSerializer
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from rest_framework import status
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from drf_scale.fast import ReadPlan, compile_read_plan

if TYPE_CHECKING:
    from rest_framework.viewsets import ModelViewSet as _View
else:
    _View = object

READ_ACTIONS: tuple[str, ...] = ("list", "retrieve")
WRITE_ACTIONS: tuple[str, ...] = ("create", "update", "partial_update")


class ReadWriteSerializerMixin(_View):
    """Validate writes with the write serializer; render every response with the read one.

    ``read_serializer_class`` serves list and retrieve, ``write_serializer_class`` create and
    updates (OPTIONS describes both); ``read_serializer_classes`` and
    ``write_serializer_classes`` override them per action (custom actions included, which
    otherwise keep their own serializer). Views without actions choose by method. A write
    answers with what a GET of the saved object returns: the read serializer of the action,
    else that of retrieve, rendering a fresh fetch through ``get_queryset()`` (by its compiled
    read plan when it has one).
    """

    read_serializer_class: type[BaseSerializer] | None = None
    write_serializer_class: type[BaseSerializer] | None = None
    read_serializer_classes: Mapping[str, type[BaseSerializer]] = {}
    write_serializer_classes: Mapping[str, type[BaseSerializer]] = {}

    def get_serializer_class(self) -> type[BaseSerializer]:
        action: str | None = getattr(self, "action", None)
        if getattr(self.request, "method", "GET") in SAFE_METHODS:
            chosen = self.read_serializer_classes.get(action) if action is not None else None
            default, actions = self.read_serializer_class, READ_ACTIONS
        else:
            chosen = self.write_serializer_classes.get(action) if action is not None else None
            default, actions = self.write_serializer_class, WRITE_ACTIONS
        if chosen is None and action in (None, "metadata", *actions):  # OPTIONS describes both
            chosen = default
        return chosen or super().get_serializer_class()

    def get_read_serializer_class(self) -> type[BaseSerializer] | None:
        """The serializer a write's response is rendered with; None: the write serializer's."""
        classes = self.read_serializer_classes
        action: str | None = getattr(self, "action", None)
        chosen = classes.get(action) if action is not None else None
        return chosen or classes.get("retrieve") or self.read_serializer_class

    def get_read_data(self, serializer: BaseSerializer) -> Any:
        """The representation of the object ``serializer`` saved, as a GET would render it."""
        read_class = self.get_read_serializer_class()
        instance = serializer.instance
        if read_class is None or not isinstance(instance, Model):
            return serializer.data
        context = self.get_serializer_context()
        queryset = self.get_queryset().filter(pk=instance.pk)
        # mypy#11470: classes are Hashable, as functools.cache requires
        rows = compile_read_plan(read_class).execute(queryset, context)  # type: ignore[arg-type]
        return rows[0] if rows else read_class(instance, context=context).data

    def refetch_saved(self, serializer: BaseSerializer) -> None:
        """OptimizedQuerysetMixin's hook: get_read_data reads the saved row afresh anyway."""

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        data = self.get_read_data(serializer)
        headers = self.get_success_headers(data)
        return Response(data, status=status.HTTP_201_CREATED, headers=headers)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return Response(self.get_read_data(serializer))


class FastReadMixin(_View):
    """List and retrieve through the compiled read plan of the action's serializer.

    Filtering and pagination are unchanged: the paginator receives the plan's ``values()``
    query (so it counts and slices it as any queryset) and the page's rows are rendered, their
    to-many relations in one query each. A serializer that does not compile, and a retrieve
    with object permissions (they need the instance), take DRF's path.
    """

    def get_read_plan(self) -> ReadPlan:
        # mypy#11470: classes are Hashable, as functools.cache requires
        return compile_read_plan(self.get_serializer_class())  # type: ignore[arg-type]

    def reads_compiled(self) -> bool:
        """Whether this request is a list or retrieve that its compiled plan serves."""
        action = getattr(self, "action", None)
        if action not in READ_ACTIONS or not self.get_read_plan().compiled:
            return False
        return action == "list" or not checks_objects(self)

    def plan_queryset(self, queryset: QuerySet) -> QuerySet:
        """OptimizedQuerysetMixin's hook: compiled reads need no select or prefetch plan."""
        if self.reads_compiled():
            return queryset
        return super().plan_queryset(queryset)  # type: ignore[misc]

    def get_row_columns(self, model: type[Model]) -> tuple[str, ...]:
        """Columns the page's rows carry besides rendered ones, for paginators that read rows.

        The primary key and the fields of the ``ordering`` and ``ordering_fields`` of the view
        and of its paginator: what a cursor paginator reads from the last row of a page.
        """
        names = [model._meta.pk.attname]
        for owner in (self, self.paginator):
            for attribute in ("ordering", "ordering_fields"):
                names += _names(getattr(owner, attribute, None))
        concrete = {field.name for field in model._meta.concrete_fields}
        return tuple(dict.fromkeys(name for name in names if name in concrete))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not self.reads_compiled():
            return super().list(request, *args, **kwargs)
        plan = self.get_read_plan()
        queryset = self.filter_queryset(self.get_queryset())
        rows = plan.rows(queryset, self.get_row_columns(queryset.model))
        page = self.paginate_queryset(rows)
        context = self.get_serializer_context()
        if page is not None:
            data = plan.render(list(page), context, queryset.db)
            return self.get_paginated_response(data)
        return Response(plan.render(list(rows), context, queryset.db))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not self.reads_compiled():
            return super().retrieve(request, *args, **kwargs)
        plan = self.get_read_plan()
        queryset: QuerySet = self.filter_queryset(self.get_queryset())
        lookup_url_kwarg = self.lookup_url_kwarg or self.lookup_field
        lookup = {self.lookup_field: self.kwargs[lookup_url_kwarg]}
        row = get_object_or_404(plan.rows(queryset), **lookup)
        context = self.get_serializer_context()
        return Response(plan.render([row], context, queryset.db)[0])


def checks_objects(view: Any) -> bool:
    """Whether a permission of the view checks objects, which needs model instances."""
    return any(
        type(permission).has_object_permission is not BasePermission.has_object_permission
        for permission in view.get_permissions()
    )


def _names(ordering: Any) -> list[str]:
    """Field names in an ordering or ordering_fields value ("__all__" names none)."""
    if ordering == "__all__":
        return []
    items = [ordering] if isinstance(ordering, str) else list(ordering or ())
    return [(item if isinstance(item, str) else item[0]).lstrip("-") for item in items]
