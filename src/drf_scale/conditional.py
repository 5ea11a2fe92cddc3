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
from typing import TYPE_CHECKING, Any

from django.db import transaction
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from drf_scale.conf import scale_settings
from drf_scale.fast import compile_read_plan
from drf_scale.http import etag_of, if_match_passes

if TYPE_CHECKING:
    from rest_framework.viewsets import ModelViewSet as _View
else:
    _View = object


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since the version this request names."
    default_code = "precondition_failed"


class PreconditionRequired(APIException):
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


class ConditionalWriteMixin(_View):
    """If-Match, If-None-Match and 428 on a viewset's writes; the ETag of what a write saved.

    The ETag compared is the one a GET of the object answers now: the representation of the
    read serializer (``get_read_serializer_class()`` when the view has one, else the action's).
    """

    def current_etag(self, pk: Any) -> str | None:
        """The ETag of the object's representation as a GET would render it (None: gone)."""
        get_read_class = getattr(self, "get_read_serializer_class", None)
        read_class = (get_read_class and get_read_class()) or self.get_serializer_class()
        queryset = self.get_queryset().filter(pk=pk)
        # mypy#11470: classes are Hashable, as functools.cache requires
        rows = compile_read_plan(read_class).execute(queryset, self.get_serializer_context())  # type: ignore[arg-type]
        return etag_of(rows[0]) if rows else None

    def check_write_preconditions(self) -> None:
        """In the write's transaction: lock the row, then compare its current ETag."""
        headers = self.request.headers
        if_match = headers.get("If-Match")
        star = headers.get("If-None-Match", "").strip() == "*"
        if if_match is None and not star:
            if scale_settings.REQUIRE_IF_MATCH:
                raise PreconditionRequired()
            return
        instance = self.get_object()
        if star:
            raise PreconditionFailed("The resource exists (If-None-Match: *).")
        manager = type(instance)._base_manager
        list(manager.select_for_update().filter(pk=instance.pk).values_list("pk"))
        if not if_match_passes(if_match or "", self.current_etag(instance.pk)):
            raise PreconditionFailed()

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            self.check_write_preconditions()
            response = super().update(request, *args, **kwargs)
        return _with_etag(response)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            self.check_write_preconditions()
            return super().destroy(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            response = super().create(request, *args, **kwargs)
        except ValidationError as error:
            star = request.headers.get("If-None-Match", "").strip() == "*"
            if star and "unique" in set(_codes(error.get_codes())):
                raise PreconditionFailed("The resource exists (If-None-Match: *).") from error
            raise
        return _with_etag(response)


def _with_etag(response: Response) -> Response:
    if response.status_code in (status.HTTP_200_OK, status.HTTP_201_CREATED):
        response["ETag"] = etag_of(response.data)
    return response
