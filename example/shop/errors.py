"""Client errors as JSON: DRF's handler plus the cases it leaves to Django."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """handler404: a URL no route matches (such as /api/products/x/) answers JSON too."""
    return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    """handler400: what Django refuses before any view (a disallowed host, too many fields)."""
    return JsonResponse({"detail": "Bad request."}, status=status.HTTP_400_BAD_REQUEST)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: a bug is a 500 in JSON too (it is logged with its traceback)."""
    return JsonResponse({"detail": "Server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with oversized bodies as 413 and constraint races as 409."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, IntegrityError):
        set_rollback()
        return Response(
            {"detail": "The request conflicts with existing data."},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)
