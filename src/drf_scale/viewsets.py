"""The drop-in viewsets: DRF's ModelViewSet and ReadOnlyModelViewSet with drf_scale's reads.

    class ProductViewSet(ScaleModelViewSet):     # was viewsets.ModelViewSet
        queryset = Product.objects.all()
        serializer_class = ProductSerializer
        cache_scope = "public"                     # optional: the representation cache

Named after what they replace, as DRF names its own, so the change is one word. Each
capability is a class attribute, as DRF's ``pagination_class`` is:

- ``get_queryset()`` is planned for each action's serializer (``OptimizedQuerysetMixin``);
- list and retrieve render through the compiled plan where the serializer allows
  (``fast_reads``, default ``DRF_SCALE["FAST_READS"]``);
- lists page by keyset (``pagination_class``, default ``DRF_SCALE["PAGINATION_CLASS"]``);
- retrieve answers with a strong ETag and 304s; writes honour If-Match and If-None-Match
  (``require_if_match``, default ``DRF_SCALE["REQUIRE_IF_MATCH"]``) and answer with the
  ETag of what they saved;
- ``cache_scope = "public"`` or ``"user"`` serves list rows and details from the
  representation cache (None, the default here: not cached);
- ``read_serializer_class(es)`` / ``write_serializer_class(es)`` split reads from writes;
- JSON is rendered and parsed by orjson (``renderer_classes``: DRF's defaults, orjson's
  renderer in place of its JSON one).
"""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings

from drf_scale.cache.views import CachedListMixin, CachedRetrieveMixin
from drf_scale.conditional import ConditionalWriteMixin
from drf_scale.conf import scale_settings
from drf_scale.mixins import FastReadMixin, OptimizedQuerysetMixin, ReadWriteSerializerMixin
from drf_scale.renderers import ORJSONParser, ORJSONRenderer

__all__ = ["ScaleModelViewSet", "ScaleReadOnlyModelViewSet"]


class _DefaultPagination:
    """``pagination_class`` read from DRF_SCALE when the class does not set it."""

    def __get__(self, instance: Any, owner: type) -> Any:
        return scale_settings.PAGINATION_CLASS


def _with_orjson(defaults: Any, json_class: type, orjson_class: type) -> list[Any]:
    """DRF's default renderers or parsers with orjson's in place of its JSON one."""
    return [orjson_class, *(c for c in defaults if not issubclass(c, json_class))]


class _ScaleReads(
    CachedRetrieveMixin, CachedListMixin, FastReadMixin, ReadWriteSerializerMixin,
    OptimizedQuerysetMixin,
):  # fmt: skip
    cache_scope = None
    pagination_class: Any = _DefaultPagination()
    # ETags hash the compact JSON orjson writes (the same bytes as DRF's JSONRenderer).
    renderer_classes = _with_orjson(
        api_settings.DEFAULT_RENDERER_CLASSES, JSONRenderer, ORJSONRenderer
    )
    parser_classes = _with_orjson(api_settings.DEFAULT_PARSER_CLASSES, JSONParser, ORJSONParser)


class ScaleReadOnlyModelViewSet(_ScaleReads, viewsets.ReadOnlyModelViewSet):
    """``viewsets.ReadOnlyModelViewSet`` with planned, compiled, paged and cacheable reads."""


class ScaleModelViewSet(ConditionalWriteMixin, _ScaleReads, viewsets.ModelViewSet):
    """``viewsets.ModelViewSet`` with drf_scale's reads and conditional writes."""
