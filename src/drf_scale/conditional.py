"""Conditional requests (RFC 9110 section 13) and caching headers (RFC 9111) for DRF views.

Reads: a strong ETag is the hash of the representation's JSON, so a cached representation
carries its ETag and ``If-None-Match`` on GET and HEAD answers 304 without the database.
Lists get a weak ETag from the collection's version. Writes (``ConditionalWriteMixin``):
``If-Match`` on PUT, PATCH and DELETE is checked against the current representation read under
a row lock, in the transaction of the write, so of two clients writing from the same version
one gets 412; ``REQUIRE_IF_MATCH`` makes it mandatory (428 without it); ``If-None-Match: *``
fails an update or delete (the resource exists) and a create that would duplicate a unique
value, with 412.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import router, transaction
from django.db.models import Model
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from drf_scale.conf import scale_settings
from drf_scale.fast import compile_read_plan
from drf_scale.http import (
    etag_of,
    if_match_passes,
    not_modified,
    set_cache_headers,
    strong_etag,
)
from drf_scale.mixins import WRITE_ACTIONS, ReadPathMixin

__all__ = [
    "ConditionalRetrieveModelMixin",
    "ConditionalWriteMixin",
    "PreconditionFailed",
    "PreconditionRequired",
]


class PreconditionFailed(APIException):
    """412: the resource is not in the state the request's precondition names."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since the version this request names."
    default_code = "precondition_failed"


class PreconditionRequired(APIException):
    """428: the write must name the version it changes."""

    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = "This write needs an If-Match header with the ETag of the resource."
    default_code = "precondition_required"


def _codes(codes: Any) -> Iterable[str]:
    if isinstance(codes, dict):
        for value in codes.values():
            yield from _codes(value)
    elif isinstance(codes, list):
        for value in codes:
            yield from _codes(value)
    else:
        yield str(codes)


class ConditionalRetrieveModelMixin(ReadPathMixin):
    """Retrieve with a strong ETag, and 304 Not Modified when If-None-Match names it.

    The name articles on DRF at scale give this behaviour (DRF has no such class). The ETag is
    the hash of the compact JSON the orjson renderer writes; other renderings (the browsable
    API, ``?indent``) get none. ``CachedRetrieveMixin`` adds the cache to it, so its hits
    answer 304 without the database.
    """

    def cache_public(self) -> bool:
        """Whether shared caches may keep the representation (Cache-Control: public)."""
        return False

    def representation_etag(self, response: Response) -> str | None:
        """The strong ETag of the body ``response`` sends: of the compact JSON without
        rendering it twice, else of the rendered bytes; None for HTML (the browsable API's
        page changes with every request)."""
        if self.compact_json():
            return etag_of(response.data)
        if "html" in (getattr(self.request, "accepted_media_type", "") or ""):
            return None
        return strong_etag(response.render().content)

    def finalize_read(self, response: Any) -> Any:
        response = super().finalize_read(response)
        if self.action != "retrieve" or response.status_code != 200:
            return response
        etag = self.representation_etag(response)
        if etag is None:
            return response
        public = self.cache_public()
        return not_modified(self.request, etag, public=public) or set_cache_headers(
            response, public=public, etag=etag
        )


class ConditionalWriteMixin(ReadPathMixin):
    """If-Match, If-None-Match and 428 on a viewset's writes; the ETag of what a write saved.

    The ETag compared is the one a GET of the object answers now: the representation of the
    read serializer (``get_read_serializer_class()`` when the view has one, else the action's),
    read under a lock of the row in the write's transaction (``perform_update`` and
    ``perform_destroy``), after the body validated. ``require_if_match`` (None: the setting
    ``REQUIRE_IF_MATCH``) answers 428 to an update or delete without If-Match.
    """

    require_if_match: bool | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.action in CHECKED_ACTIONS and "If-Match" not in request.headers:
            required = self.require_if_match
            if required is None:
                required = scale_settings.REQUIRE_IF_MATCH
            if required and not _none_match_star(request):
                raise PreconditionRequired()

    def get_object(self) -> Any:
        instance = super().get_object()
        if self.action in CHECKED_ACTIONS and _none_match_star(self.request):
            raise PreconditionFailed("The resource exists (If-None-Match: *).")
        return instance

    def current_etag(self, pk: Any) -> str | None:
        """The ETag of the object's representation as a GET would render it (None: gone)."""
        read_class = self.get_read_serializer_class() or self.get_serializer_class()
        queryset = self.get_queryset().filter(pk=pk)
        # mypy#11470: classes are Hashable, as functools.cache requires
        rows = compile_read_plan(read_class).execute(queryset, self.get_serializer_context())  # type: ignore[arg-type]
        return etag_of(rows[0]) if rows else None

    def check_if_match(self, instance: Model) -> None:
        """In the write's transaction: lock the row, then compare its current ETag."""
        if_match = self.request.headers.get("If-Match")
        if if_match is None:
            return
        manager = type(instance)._base_manager
        list(manager.select_for_update().filter(pk=instance.pk).values_list("pk"))
        if not if_match_passes(if_match, self.current_etag(instance.pk)):
            raise PreconditionFailed()

    def perform_update(self, serializer: BaseSerializer) -> None:
        assert isinstance(serializer.instance, Model)  # an update saves the object it got
        with transaction.atomic(using=router.db_for_write(type(serializer.instance))):
            self.check_if_match(serializer.instance)
            super().perform_update(serializer)

    def perform_destroy(self, instance: Model) -> None:
        with transaction.atomic(using=router.db_for_write(type(instance))):
            self.check_if_match(instance)
            super().perform_destroy(instance)

    def handle_exception(self, exc: Exception) -> Any:
        if (
            getattr(self, "action", None) == "create"
            and isinstance(exc, ValidationError)
            and _none_match_star(self.request)
            and "unique" in set(_codes(exc.get_codes()))
        ):
            exc = PreconditionFailed("The resource exists (If-None-Match: *).")
        return super().handle_exception(exc)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        written = response.status_code in (status.HTTP_200_OK, status.HTTP_201_CREATED)
        if self.action in WRITE_ACTIONS and written and isinstance(response, Response):
            response["ETag"] = etag_of(response.data)
        return response


CHECKED_ACTIONS = ("update", "partial_update", "destroy")


def _none_match_star(request: Any) -> bool:
    return request.headers.get("If-None-Match", "").strip() == "*"
