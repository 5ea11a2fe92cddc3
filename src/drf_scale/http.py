"""Pure HTTP helpers for conditional requests (RFC 9110 section 13) and caching headers
(RFC 9111): ETags, preconditions, Cache-Control and Vary. No view, no database: the view side
is ``drf_scale.conditional`` and ``drf_scale.cache``, as Django's ``utils/cache.py`` is apart
from its view decorators.

A strong ETag is the hash of a representation's compact JSON (``etag_of`` for data,
``strong_etag`` for bytes already rendered); a weak one hashes what a collection's version is
made of.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, HttpResponseBase, HttpResponseNotModified
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import parse_etags, quote_etag

from drf_scale.conf import scale_settings
from drf_scale.edge import set_surrogate_keys
from drf_scale.renderers import ORJSONRenderer

__all__ = [
    "etag_of",
    "if_match_passes",
    "none_match",
    "not_modified",
    "set_cache_headers",
    "strong_etag",
    "weak_etag",
]


def strong_etag(body: bytes) -> str:
    """The strong ETag of rendered bytes."""
    return quote_etag(hashlib.blake2b(body, digest_size=12).hexdigest())


def weak_etag(*parts: str) -> str:
    """A weak ETag naming what ``parts`` identify (a collection's version, a URL, a scope)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()
    return "W/" + quote_etag(digest)


def _opaque(etag: str) -> str:
    return etag.removeprefix("W/")


def none_match(request: HttpRequest, etag: str) -> bool:
    """Whether If-None-Match names ``etag`` or is ``*`` (weak comparison)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or _opaque(etag) in {_opaque(tag) for tag in tags}


def if_match_passes(header: str, etag: str | None) -> bool:
    """If-Match with strong comparison: a weak tag never matches; ``*`` matches any resource."""
    tags = parse_etags(header)
    if "*" in tags:
        return etag is not None
    return etag is not None and not etag.startswith("W/") and etag in tags


def set_cache_headers(
    response: HttpResponseBase,
    *,
    public: bool,
    etag: str | None = None,
    keys: Sequence[str] | None = None,
) -> HttpResponseBase:
    """ETag, Cache-Control and Vary: public representations may be kept by shared caches
    (``s-maxage``, ``stale-while-revalidate``); anything that depends on the user is private.

    With an edge (``EDGE_KEY_HEADER``), a public response names its surrogate ``keys``; one
    without keys is not kept by the edge, which could not be told when it goes stale."""
    if etag:
        response["ETag"] = etag
    ages = (scale_settings.CACHE_S_MAXAGE, scale_settings.CACHE_STALE_WHILE_REVALIDATE)
    if response.has_header("Cache-Control"):
        patch_cache_control(response, **_cache_control(public, *ages))
    else:  # the common case: a header built once
        response["Cache-Control"] = _cache_control_header(public, *ages)
    if public:
        set_surrogate_keys(response, keys)
    vary = _PUBLIC_VARY if public else _PRIVATE_VARY
    if response.has_header("Vary"):
        patch_vary_headers(response, vary)
    else:
        response["Vary"] = ", ".join(vary)
    return response


_PUBLIC_VARY = ("Accept",)
_PRIVATE_VARY = ("Accept", "Authorization", "Cookie")


@functools.cache
def _cache_control(public: bool, s_maxage: int, stale_while_revalidate: int) -> dict[str, Any]:
    if public:
        return {
            "public": True,
            "max_age": 0,
            "s_maxage": s_maxage,
            "stale_while_revalidate": stale_while_revalidate,
        }
    return {"private": True, "no_cache": True}


@functools.cache
def _cache_control_header(public: bool, s_maxage: int, stale_while_revalidate: int) -> str:
    return ", ".join(
        key.replace("_", "-") if value is True else f"{key.replace('_', '-')}={value}"
        for key, value in _cache_control(public, s_maxage, stale_while_revalidate).items()
    )


def not_modified(request: HttpRequest, etag: str, *, public: bool) -> HttpResponseBase | None:
    """The 304 for a GET or HEAD whose If-None-Match names ``etag``, with the cache headers
    (for DRF and plain Django views alike)."""
    if request.method not in ("GET", "HEAD") or not none_match(request, etag):
        return None
    return set_cache_headers(HttpResponseNotModified(), public=public, etag=etag)


def etag_of(data: Any) -> str:
    """The strong ETag of ``data`` as the orjson renderer renders it compactly."""
    return strong_etag(ORJSONRenderer().render(data))
