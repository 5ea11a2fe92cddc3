"""orjson renderer and parser with the JSON meaning of DRF's JSONRenderer and JSONParser.

    REST_FRAMEWORK = {
        "DEFAULT_RENDERER_CLASSES": ["drf_scale.renderers.ORJSONRenderer", ...],
        "DEFAULT_PARSER_CLASSES": ["drf_scale.renderers.ORJSONParser", ...],
    }

orjson does the common case; what it treats differently from Python's json module is handed
to DRF's own classes, so the result is DRF's: values orjson cannot encode (integers beyond 64
bits, non-string keys), indented output (the browsable API), ASCII-only output, bodies orjson
refuses (NaN, lone surrogates, out-of-range numbers) and numbers it would round. Values orjson
does not know go through DRF's encoder (Decimal as float, lazy strings, datetimes with 'Z').
The one difference left: a float NaN or infinity in the data renders as null, where DRF's
strict encoder raises.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

__all__ = ["ORJSONParser", "ORJSONRenderer"]

# Datetimes go to DRF's encoder, which keeps offsets to the second; dataclasses are not JSON
# to DRF either.
_DUMPS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# orjson reads integers past 64 bits as floats: bodies with numbers that long go to json.
_LONG_NUMBER = re.compile(rb"\d{19}")
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class ORJSONRenderer(JSONRenderer):
    """DRF's JSONRenderer on orjson: the same JSON, the same bytes for compact output."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        # DRF's get_indent() takes None (its own render() passes it); the stubs say str.
        indent = self.get_indent(accepted_media_type, renderer_context or {})  # type: ignore[arg-type]
        if indent is not None or self.ensure_ascii:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            rendered = orjson.dumps(data, default=self.encoder_class().default, option=_DUMPS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        # DRF escapes these two so the output is also valid JavaScript.
        for raw, escaped in _LINE_SEPARATORS:
            if raw in rendered:
                rendered = rendered.replace(raw, escaped)
        return rendered


class ORJSONParser(JSONParser):
    """DRF's JSONParser on orjson: what orjson refuses, DRF's parser judges, with its message."""

    renderer_class = ORJSONRenderer

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = _read_bounded(stream)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        _check_text_encoding(encoding)
        if _is_utf8(encoding) and not _LONG_NUMBER.search(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:  # past orjson's depth (1024), json recurses past Python's limit
            raise ParseError("JSON parse error - nested too deeply.") from None


def _read_bounded(stream: Any) -> bytes:
    """The body, refused past DATA_UPLOAD_MAX_MEMORY_SIZE as ``request.body`` refuses it
    (DRF 3.17 reads JSON through ``request.body``; DRF 3.16 streams it without a limit)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(body) > limit:
        raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
    return body


def _check_text_encoding(encoding: str) -> None:
    """A 400 for a charset that is no text encoding (``bz2_codec`` would inflate the body after
    its size was checked), as DRF 3.17 answers; DRF 3.16 decodes it."""
    try:
        "".encode(encoding)
    except (LookupError, UnicodeError):
        raise ParseError(f'Unsupported charset "{encoding}" in request Content-Type header.') from (
            None
        )


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
