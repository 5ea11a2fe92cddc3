"""The library's work after a commit (invalidation, aggregate refreshes): each hook isolated.

A hook that fails is logged and counted, and never skips the hooks after it nor turns the
committed write into an error: the write stands whatever its side effects do. Django's own
``robust=True`` is not enough: on Django 5.2 its error logging itself fails on a
``functools.partial``, and the exception escapes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from django.db import transaction

__all__ = ["after_commit", "hook_failures"]

logger = logging.getLogger("drf_scale.oncommit")
_failures: Counter[str] = Counter()
_lock = threading.Lock()


def after_commit(
    hook: Callable[[], object],
    *,
    name: str,
    using: str | None = None,
    on_failure: Callable[[], object] | None = None,
) -> None:
    """Run ``hook`` once the transaction on ``using`` commits (now, outside one), isolated.

    ``on_failure`` runs after a failure, to keep a promise the hook could not (an
    invalidation that did not happen orphans the whole cache instead).
    """

    def run() -> None:
        try:
            hook()
        except Exception:
            with _lock:
                _failures[name] += 1
            logger.exception("drf-scale: %s failed after a commit; the write stands", name)
            if on_failure is not None:
                try:
                    on_failure()
                except Exception:
                    logger.exception("drf-scale: the fallback of %s failed too", name)

    transaction.on_commit(run, using=using)


def hook_failures() -> dict[str, int]:
    """Failed after-commit hooks by name since the process started (for metrics)."""
    with _lock:
        return dict(_failures)
