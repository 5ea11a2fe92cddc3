"""What the OpenAPI schema says besides the serializers: the errors each route answers.

Views declare their own errors with ``errors(...)`` in ``extend_schema(responses=...)``.
Two answers come from the settings and can follow any request, so ``ShopAutoSchema`` (the
DEFAULT_SCHEMA_CLASS) adds them to every operation: 401 (TokenAuthentication refuses a bad
token on any route, reads included) and 503 (DatabaseUnavailableMiddleware, while the
database is unreachable).
"""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

from drf_scale.conf import scale_settings
from shop.permissions import IsStaffOrReadOnly


class ErrorSerializer(serializers.Serializer):
    """An error, in one sentence."""

    detail = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    """A 400: each invalid field or query parameter (or ``non_field_errors``, or ``detail``)
    with its messages: a list of strings, or nested by item and field."""


class ValidationErrorExtension(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        message = {"oneOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]}
        return {
            "type": "object",
            "description": "Each invalid field or query parameter with its messages.",
            "additionalProperties": message,
            "minProperties": 1,
            "example": {"price": ["Must be greater than zero."]},
        }


DESCRIPTIONS = {
    400: "Invalid input: each bad field or query parameter with its messages.",
    401: "Not authenticated, or the token is invalid.",
    403: "Not allowed: staff only, or the CSRF check of a session login failed.",
    404: "No such object.",
    409: "The request conflicts with the current data.",
    412: "If-Match names another version of the resource, or If-None-Match: * and it exists.",
    413: "The request body is over 1 MiB.",
    415: "Unsupported Content-Type.",
    428: "This write needs an If-Match header with the ETag of the resource.",
    503: "The database is unavailable: retry after Retry-After seconds.",
}

# What answers a request with a body besides its own validation errors.
BODY_ERRORS = (413, 415)


def errors(*codes: int | tuple[int, str]) -> dict[int, OpenApiResponse]:
    """The error responses ``codes``, each an int or ``(code, description)``, for
    ``extend_schema(responses={200: ..., **errors(400, (404, "No such product."))})``."""
    responses = {}
    for item in codes:
        code, description = item if isinstance(item, tuple) else (item, DESCRIPTIONS[item])
        body = ValidationErrorSerializer if code == 400 else ErrorSerializer
        responses[code] = OpenApiResponse(body, description=description)
    return responses


def if_match_errors() -> tuple[int, ...]:
    """412, and 428 when ``DRF_SCALE["REQUIRE_IF_MATCH"]`` makes If-Match mandatory."""
    return (412, 428) if scale_settings.REQUIRE_IF_MATCH else (412,)


NOT_MODIFIED = OpenApiResponse(description="If-None-Match names the current ETag: no body.")

IF_NONE_MATCH_READ = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="ETags the client holds: 304 if one is current.",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The ETag the write is based on: 412 if the product changed since.",
)
IF_NONE_MATCH_WRITE = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="'*': 412 if the resource exists (for a create: if its sku is taken).",
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The strong ETag of the representation.",
    response=[200, 201],
)
WEAK_ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The weak ETag of the page.",
    response=[200],
)

# Answers any route may give: (description, header, header description).
COMMON = {
    401: (DESCRIPTIONS[401], "WWW-Authenticate", "How to authenticate: 'Token'."),
    503: (DESCRIPTIONS[503], "Retry-After", "Seconds to wait before retrying."),
}


class ShopAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus: the 401 and 503 every route may answer; reads open
    to anyone under IsStaffOrReadOnly (drf-spectacular knows only DRF's permissions); filter
    parameters that may be empty."""

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        """The filter backends' parameters; empty, each is no filter (django-filter, DRF's
        OrderingFilter), which ``allowEmptyValue`` says."""
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            if parameter.get("in") == "query":
                parameter["allowEmptyValue"] = True
        return parameters

    def get_auth(self) -> list[dict[str, Any]]:
        auth = super().get_auth()
        permissions = self.view.get_permissions()
        anyone_reads = all(isinstance(p, IsStaffOrReadOnly) for p in permissions)
        if self.method in SAFE_METHODS and permissions and anyone_reads and {} not in auth:
            auth.append({})
        return auth

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        for code, (description, header, about) in COMMON.items():
            response = OpenApiResponse(ErrorSerializer, description=description)
            body = self._get_response_for_code(response, str(code), direction=direction)
            kind = "string" if code == 401 else "integer"
            headers = {header: {"schema": {"type": kind}, "description": about}}
            bodies.setdefault(str(code), {**body, "headers": headers})
        return bodies
