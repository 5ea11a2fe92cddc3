"""Surrogate keys for an edge cache (Varnish, Fastly, Cloudflare) and their purge on commit.

A public cached response names what it shows in a header (``EDGE_KEY_HEADER``): a detail its
own key and the keys of the rows it embeds (``shop.product:17 shop.brand:3 shop.tag:5 ...``)
and its model's key (``shop.product:all``), a list its collection's key
(``shop.product:list``). After a commit, the same step of the write that invalidates the
representation cache names the keys to purge (``drf_scale.cache.invalidation``) and the
configured purger (``EDGE_PURGER``) removes them from the edge.

A purge is sent right after the commit, in batches, each retried with backoff. One that
still fails never fails the write: it goes to the task queue (Celery, retried with backoff),
else to a bounded queue of this process that the next purge sends first. Whatever is lost,
the edge's TTL (``CACHE_S_MAXAGE`` + ``CACHE_STALE_WHILE_REVALIDATE``) bounds the staleness.
Private responses never carry keys: the edge does not keep them.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.db import models, router
from django.http import HttpResponseBase
from django.utils.cache import patch_cache_control
from django.utils.module_loading import import_string

from drf_scale.breaker import Breaker
from drf_scale.conf import EDGE_KEY_HEADERS, scale_settings
from drf_scale.model_meta import concrete_model
from drf_scale.oncommit import after_commit

__all__ = [
    "KEY_HEADERS",
    "CloudflarePurger",
    "FastlyPurger",
    "PurgeFailed",
    "Purger",
    "VarnishPurger",
    "get_purger",
    "list_key",
    "model_key",
    "object_key",
    "pending_purges",
    "purge",
    "set_surrogate_keys",
]

logger = logging.getLogger("drf_scale.edge")

# The header each edge reads its keys from, and how it separates them (what the setting takes).
KEY_HEADERS: Mapping[str, str] = EDGE_KEY_HEADERS
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")


def _label(model: type[models.Model] | str) -> str:
    """A model's label; a proxy's is its concrete model's (its rows are the same rows)."""
    return model if isinstance(model, str) else concrete_model(model)._meta.label_lower


def object_key(model: type[models.Model] | str, pk: Any) -> str:
    """The key of one row: ``shop.product:17`` (a pk that is not a plain token is hashed)."""
    text = str(pk)
    if not _PLAIN.fullmatch(text):
        text = "~" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return f"{_label(model)}:{text}"


def list_key(model: type[models.Model] | str) -> str:
    """The key of every list of the model: purged whenever one of its objects changes."""
    return f"{_label(model)}:list"


def model_key(model: type[models.Model] | str) -> str:
    """The key of every response of the model: purged by ``invalidate_model``."""
    return f"{_label(model)}:all"


def keys_enabled() -> bool:
    return scale_settings.EDGE_KEY_HEADER is not None


def set_surrogate_keys(response: HttpResponseBase, keys: Sequence[str] | None) -> None:
    """Name ``keys`` in the edge's header. None (more keys than ``EDGE_MAX_KEYS``, or not
    known): the edge must not keep the response (``s-maxage=0``)."""
    header = scale_settings.EDGE_KEY_HEADER
    if header is None:
        return
    if keys is None or len(keys) > scale_settings.EDGE_MAX_KEYS:
        patch_cache_control(response, s_maxage=0)
        return
    response[header] = KEY_HEADERS[header].join(keys)


class PurgeFailed(Exception):
    """The edge did not take a purge: ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Purger:
    """Removes objects from an edge by surrogate key: ``send()`` one batch, the rest here.

    ``batch_size`` keys per request, each request tried ``1 + retries`` times with
    exponential backoff from ``backoff`` seconds; ``timeout`` bounds each request.
    """

    batch_size = 256

    def __init__(
        self, *, timeout: float | None = None, retries: int | None = None, backoff: float = 0.05
    ) -> None:
        self.timeout = scale_settings.EDGE_PURGE_TIMEOUT if timeout is None else timeout
        self.retries = scale_settings.EDGE_PURGE_RETRIES if retries is None else retries
        self.backoff = backoff

    def purge(self, keys: Iterable[str]) -> None:
        """Purge ``keys``; PurgeFailed once a batch failed every try."""
        for batch in batches(sorted(set(keys)), self.batch_size):
            for attempt in range(self.retries + 1):
                try:
                    self.send(batch)
                    break
                except PurgeFailed as failure:
                    if not failure.retry or attempt == self.retries:
                        raise
                time.sleep(self.backoff * 2**attempt)

    def send(self, keys: list[str]) -> None:
        """Purge one batch of keys; raise PurgeFailed if the edge did not take it."""
        raise NotImplementedError

    def request(self, method: str, url: str, headers: dict[str, str], body: Any = None) -> bytes:
        """One HTTP request: its body, or PurgeFailed (retried on 429, 5xx and no answer)."""
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers = {**headers, "Content-Type": "application/json"}
        call = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as error:
            retry = error.code == 429 or error.code >= 500
            raise PurgeFailed(f"{method} {url}: HTTP {error.code}", retry=retry) from error
        except (OSError, http.client.HTTPException) as error:  # refused, reset, cut short
            raise PurgeFailed(f"{method} {url}: {error}") from error


class VarnishPurger(Purger):
    """Varnish with the xkey vmod: ``PURGE`` to each instance, the keys in ``xkey-purge``
    (``xkey-softpurge`` with ``soft``), as the VCL in the README handles them."""

    def __init__(self, urls: Sequence[str], *, soft: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.urls = list(urls)
        self.header = "xkey-softpurge" if soft else "xkey-purge"

    def send(self, keys: list[str]) -> None:
        for url in self.urls:
            self.request("PURGE", url, {self.header: " ".join(keys)})


class FastlyPurger(Purger):
    """Fastly's bulk purge by surrogate key: up to 256 keys a request, soft by default
    (objects are marked stale, so the edge may serve them while it revalidates)."""

    def __init__(
        self,
        service_id: str,
        token: str,
        *,
        soft: bool = True,
        api: str = "https://api.fastly.com",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = f"{api.rstrip('/')}/service/{service_id}/purge"
        self.headers = {"Fastly-Key": token, "Accept": "application/json"}
        if soft:
            self.headers["Fastly-Soft-Purge"] = "1"

    def send(self, keys: list[str]) -> None:
        self.request("POST", self.url, self.headers, {"surrogate_keys": keys})


class CloudflarePurger(Purger):
    """Cloudflare's purge by cache tag: up to 100 tags a request (it has no soft purge)."""

    batch_size = 100

    def __init__(
        self,
        zone_id: str,
        token: str,
        *,
        api: str = "https://api.cloudflare.com/client/v4",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = f"{api.rstrip('/')}/zones/{zone_id}/purge_cache"
        self.headers = {"Authorization": f"Bearer {token}"}

    def send(self, keys: list[str]) -> None:
        answer = self.request("POST", self.url, self.headers, {"tags": keys})
        try:
            success = json.loads(answer).get("success") is True
        except (ValueError, AttributeError):
            success = False
        if not success:
            raise PurgeFailed(f"POST {self.url}: not a success: {answer[:200]!r}", retry=False)


def batches(keys: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


@scale_settings.derived
@functools.cache
def get_purger() -> Purger | None:
    """The purger ``EDGE_PURGER`` names, built with ``EDGE_PURGER_OPTIONS``; None: no edge."""
    path = scale_settings.EDGE_PURGER
    if path is None:
        return None
    purger_class = import_string(path)
    if not (isinstance(purger_class, type) and issubclass(purger_class, Purger)):
        raise TypeError(f"DRF_SCALE['EDGE_PURGER'] {path!r} is not a drf_scale.edge.Purger")
    return purger_class(**scale_settings.EDGE_PURGER_OPTIONS)


class _Pending:
    """Keys whose purge failed and could not be queued as a task: sent with the next purge.
    Bounded: past ``EDGE_PURGE_QUEUE_SIZE`` keys, the oldest go (the edge TTL bounds them)."""

    def __init__(self) -> None:
        self.keys: dict[str, None] = {}
        self.dropped = 0
        self.lock = threading.Lock()

    def add(self, keys: Iterable[str]) -> None:
        with self.lock:
            self.keys.update(dict.fromkeys(keys))
            excess = len(self.keys) - scale_settings.EDGE_PURGE_QUEUE_SIZE
            for key in list(self.keys)[: max(excess, 0)]:
                del self.keys[key]
                self.dropped += 1

    def take(self) -> list[str]:
        with self.lock:
            keys, self.keys = list(self.keys), {}
            return keys


_pending = _Pending()


def pending_purges() -> dict[str, int]:
    """Keys waiting in this process for a purge, and keys dropped from that queue (metrics)."""
    return {"pending": len(_pending.keys), "dropped": _pending.dropped}


def purge(keys: Iterable[str]) -> None:
    """Purge ``keys`` now (and what earlier failures left): on failure, hand them to the task
    queue, else keep them for the next purge. Never raises. After a failure the edge is not
    asked again for ``EDGE_PURGE_COOLDOWN`` seconds: the keys go to the queue at once."""
    purger = get_purger()
    if purger is None:
        return
    keys = [*_pending.take(), *keys]
    if not keys:
        return
    breaker = _edge_breaker()
    if not breaker.allows():
        _retry_later(keys)
        return
    try:
        purger.purge(keys)
    except Exception as failure:  # PurgeFailed, or whatever else the edge's answer raised
        breaker.failed()
        logger.warning("drf-scale: an edge purge failed (%s); it is retried later", failure)
        _retry_later(keys)
    else:
        breaker.succeeded()


def _retry_later(keys: list[str]) -> None:
    """Queue the purge as a task, waiting at most ``EDGE_PURGE_TIMEOUT`` for the broker (one
    that hangs would hold the write); else this process keeps the keys."""
    sent = threading.Event()

    def send() -> None:
        try:
            from drf_scale.edge_tasks import purge_keys, queues_tasks  # the celery extra

            if queues_tasks():
                purge_keys.apply_async((sorted(set(keys)),), countdown=1, retry=False)
                sent.set()
        except Exception:  # no Celery, or its broker refused
            logger.warning("drf-scale: the edge purge could not be queued", exc_info=True)

    sender = threading.Thread(target=send, name="drf-scale edge purge queueing", daemon=True)
    sender.start()
    sender.join(scale_settings.EDGE_PURGE_TIMEOUT)
    if not sent.is_set():  # kept here too: a late task purges them twice, which is harmless
        _pending.add(keys)


@scale_settings.derived
@functools.cache
def _edge_breaker() -> Breaker:
    """Open after one failed purge, for EDGE_PURGE_COOLDOWN seconds."""
    return Breaker(1, scale_settings.EDGE_PURGE_COOLDOWN)


def purge_after_commit(
    keys: Any, model: type[models.Model], fallback: Callable[[], Iterable[str]] = tuple
) -> None:
    """Purge the keys ``keys()`` names once the transaction writing ``model`` commits; should
    naming them fail (the database gone), the broader ``fallback()`` keys. The purger is
    built there, in the isolated hook: a bad EDGE_PURGER fails no write (check E030)."""
    if scale_settings.EDGE_PURGER is None:
        return
    after_commit(
        lambda: purge(keys()),
        name="edge purge",
        using=router.db_for_write(model),
        on_failure=lambda: purge(fallback()),
    )
