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
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

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
        indent = self.get_indent(accepted_media_type, renderer_context or {})
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
        body = stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        if _is_utf8(encoding) and not _LONG_NUMBER.search(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        return super().parse(io.BytesIO(body), media_type, parser_context)


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
