"""The representation cache: rendered JSON by object, invalidated after the commits that change it.

``store`` keeps entries (Redis or memory) with leases and an epoch, ``invalidation`` finds
what a write makes stale, ``views`` serves detail and lists from it, ``aio`` serves them to
async views.
"""

from drf_scale.cache.aio import AsyncCachedReads
from drf_scale.cache.invalidation import (
    CachedManager,
    CachedQuerySet,
    invalidate,
    invalidate_model,
    load_views,
)
from drf_scale.cache.views import CachedListMixin, CachedRetrieveMixin

__all__ = [
    "AsyncCachedReads",
    "CachedListMixin",
    "CachedManager",
    "CachedQuerySet",
    "CachedRetrieveMixin",
    "invalidate",
    "invalidate_model",
    "load_views",
]
