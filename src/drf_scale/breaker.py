"""A circuit breaker, and Django's cache behind one: what the library keeps in a shared cache
(counts, aggregates) never turns a cache outage into an error or a hang.

``GuardedCache`` answers like a cache that lost everything while the cache fails or its
breaker is open: a read is a miss, a write is dropped (logged), ``add`` answers what the
caller says it should (usually "go ahead, you hold the lock"). Each failed call costs the
backend's socket timeout, set in CACHES OPTIONS (check drf_scale.W050 asks for one); once
the breaker opens, calls cost nothing until ``cooldown`` has passed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache import caches

from drf_scale.conf import scale_settings

__all__ = ["Breaker", "GuardedCache", "guarded_cache"]

logger = logging.getLogger("drf_scale.cache")


class Breaker:
    """Open after ``failures`` consecutive errors; then one trial call per ``cooldown`` seconds."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self.failures, self.cooldown = failures, cooldown
        self.errors = 0
        self.open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def succeeded(self) -> None:
        self.errors = 0

    def failed(self) -> None:
        self.errors += 1
        if self.errors >= self.failures:
            self.open_until = time.monotonic() + self.cooldown


_MISSING = object()


class GuardedCache:
    """The Django cache ``alias`` behind a breaker: failures are misses, never exceptions."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.breaker = Breaker(
            scale_settings.CACHE_BREAKER_FAILURES, scale_settings.CACHE_BREAKER_COOLDOWN
        )
        self.lock = threading.Lock()

    def _call(self, method: str, *args: Any, failed: Any = None, **kwargs: Any) -> Any:
        if not self.breaker.allows():
            return failed
        try:
            result = getattr(caches[self.alias], method)(*args, **kwargs)
        except Exception as error:
            with self.lock:
                self.breaker.failed()
            logger.warning("drf-scale: cache %r failed (%s): %r", self.alias, method, error)
            return failed
        self.breaker.succeeded()
        return result

    def get(self, key: str, default: Any = None) -> Any:
        """The value, or ``default`` (a miss) when the cache fails."""
        return self._call("get", key, default, failed=default)

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        self._call("set", key, value, timeout)

    def add(self, key: str, value: Any, timeout: float | None, *, on_failure: bool) -> bool:
        """``cache.add``; ``on_failure`` is the answer while the cache fails."""
        return bool(self._call("add", key, value, timeout, failed=on_failure))

    def delete(self, key: str) -> None:
        self._call("delete", key)


_guarded: dict[str, GuardedCache] = {}
_guarded_lock = threading.Lock()


def guarded_cache(alias: str) -> GuardedCache:
    """The process's GuardedCache of ``alias`` (one breaker per alias)."""
    with _guarded_lock:
        if alias not in _guarded:
            _guarded[alias] = GuardedCache(alias)
        return _guarded[alias]


def _forget() -> None:
    with _guarded_lock:
        _guarded.clear()


scale_settings.on_change(_forget, also=("CACHES",))
