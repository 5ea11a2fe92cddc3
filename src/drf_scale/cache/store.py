"""Where representations live: one Redis shared by every process, or this process's memory.

Each cached object is one hash, ``<prefix>:obj:<app.model>:<pk>``. Its fields are the
representations of that object (one per serializer namespace and scope, as
``<epoch>|<etag>|<json>``) and their leases. Invalidating an object deletes the hash: every
representation of it and every lease on it go at once.

Leases (the stale-set protection of "Scaling Memcache at Facebook", NSDI 2013): a miss takes a
lease before it reads the database, and its result is stored only if that lease still exists.
An invalidation after the read deleted the lease, so an old representation cannot be stored
after the write that made it old. Another request missing the same key meanwhile finds the
lease busy and waits for the holder instead of reading the database too (stampedes).

The epoch guards against invalidations that never reached Redis: every entry carries the
epoch it was stored in, and a new epoch orphans every entry stored before. A process renews it
on its first contact with Redis after it lost an invalidation or saw the breaker open (it
cannot know what other processes lost meanwhile). Every new connection compares Redis's
run_id with the one the epoch was made under: a Redis that restarted, from a snapshot older
than invalidations it had acknowledged or as a promoted replica, gets a new epoch before the
connection is used. A Redis that restarts empty starts a new epoch as well. A circuit breaker
stops paying the connection timeout on every request while Redis is down.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from drf_scale.conf import scale_settings

if TYPE_CHECKING:
    from drf_scale.cache.redis_store import RedisStore

__all__ = ["LocalStore", "Store", "Unavailable", "get_store"]


@dataclass(frozen=True)
class Entry:
    """A stored representation: its strong ETag, its JSON and, for an edge, its surrogate keys
    (``drf_scale.edge``; None: not known)."""

    etag: str
    body: bytes
    keys: tuple[str, ...] | None = None

    def pack(self) -> bytes:
        head = self.etag if self.keys is None else f"{self.etag}\t{' '.join(self.keys)}"
        return head.encode() + b"|" + self.body

    @classmethod
    def unpack(cls, payload: bytes) -> Entry:
        head, _, body = payload.partition(b"|")
        etag, tab, keys = head.decode().partition("\t")
        return cls(etag, body, tuple(keys.split()) if tab else None)


@dataclass(frozen=True)
class Lease:
    """The right to store the representation this request is about to read from the database."""

    token: str


# What a read of one key gives: an Entry, a Lease, or None (busy, or the store is unavailable).
Lookup = Entry | Lease | None
# What a write stores: per object its pk, the lease its read took and the entry (None: release).
Items = Sequence[tuple[Any, Lease, Entry | None]]


class Unavailable(Exception):
    """The store did not answer, or its circuit breaker is open."""


def ttl() -> int:
    return int(scale_settings.CACHE_TTL)


def lookup(value: bytes) -> Lookup:
    """A stored field as the protocol's answer: a hit, a lease taken, or None."""
    if not value:
        return None
    if value.startswith(b"!"):
        return Lease(value[1:].decode())
    return Entry.unpack(value)


# Every key of a model carries its label as a hash tag: on Redis Cluster, they share a slot,
# so one script reads the model's epoch, generation and objects.


def object_key(label: str, pk: Any) -> str:
    return f"{scale_settings.CACHE_KEY_PREFIX}:obj:{{{label}}}:{pk}"


def collection_key(label: str) -> str:
    """Bumped by every invalidation of an object of the model: the version of its lists."""
    return f"{scale_settings.CACHE_KEY_PREFIX}:col:{{{label}}}"


def generation_key(label: str) -> str:
    """Bumped by ``invalidate_model``: part of every field name, so all entries go at once."""
    return f"{scale_settings.CACHE_KEY_PREFIX}:gen:{{{label}}}"


def epoch_key(label: str | None = None) -> str:
    """The epoch of every entry; on Redis Cluster, each model has its own (``label``)."""
    suffix = "" if label is None else f":{{{label}}}"
    return f"{scale_settings.CACHE_KEY_PREFIX}:epoch{suffix}"


def run_key(label: str | None = None) -> str:
    """The run_id of the Redis process the epoch was made under."""
    return epoch_key(label) + "-run"


def lease_field(field: str) -> str:
    return "lease:" + field


class LocalStore:
    """The embedded default: the same protocol in this process's memory, for one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, int] = {}

    def _field(self, label: str, field: str) -> str:
        return f"{field}:{self.counters.get(generation_key(label), 0)}"

    def read(self, label: str, pks: Sequence[Any], field: str, lease_ms: int) -> list[Lookup]:
        now = time.monotonic()
        out: list[Lookup] = []
        with self.lock:
            field = self._field(label, field)
            for pk in pks:
                fields = self.objects.get(object_key(label, pk), {})
                entry, lease = fields.get(field), fields.get(lease_field(field))
                if entry is not None and entry[1] > now:
                    out.append(entry[0])
                elif lease_ms == 0:
                    out.append(Lease(""))  # a peek takes no lease
                elif lease is not None and lease[1] > now:
                    out.append(None)
                else:
                    token = secrets.token_hex(8)
                    fields[lease_field(field)] = (token, now + lease_ms / 1000)
                    self.objects[object_key(label, pk)] = fields
                    out.append(Lease(token))
        return out

    async def apeek(self, label: str, pks: Sequence[Any], field: str) -> list[Entry | None]:
        found = self.read(label, pks, field, lease_ms=0)  # memory: nothing to wait for
        return [entry if isinstance(entry, Entry) else None for entry in found]

    def write(self, label: str, field: str, items: Items) -> int:
        """Store each entry whose lease still holds (None releases it): how many were stored."""
        expires = time.monotonic() + ttl()
        stored = 0
        with self.lock:
            field = self._field(label, field)
            for pk, lease, entry in items:
                fields = self.objects.get(object_key(label, pk), {})
                held = fields.get(lease_field(field))
                if held is None or held[0] != lease.token:
                    continue
                del fields[lease_field(field)]
                if entry is not None:
                    fields[field] = (entry, expires)
                    stored += 1
                elif not fields:  # a released lease: keep no empty object (404s)
                    del self.objects[object_key(label, pk)]
        return stored

    def invalidate(self, objects: dict[str, set[Any]], models: Sequence[str] = ()) -> None:
        with self.lock:
            for label, pks in objects.items():
                for pk in pks:
                    self.objects.pop(object_key(label, pk), None)
                self._bump(collection_key(label))
            for label in models:
                self._bump(generation_key(label))
                self._bump(collection_key(label))

    def retire(self) -> None:
        """No longer the process's store: nothing runs in the background to stop."""

    def lost_invalidation(self) -> None:
        """An invalidation could not be computed: drop every entry, and every list version."""
        with self.lock:
            self.objects.clear()
            self._bump(epoch_key())

    def _bump(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def version(self, label: str) -> str:
        with self.lock:
            return ":".join(
                str(self.counters.get(key, 0))
                for key in (epoch_key(), generation_key(label), collection_key(label))
            )

    def clear(self) -> None:
        with self.lock:
            self.objects.clear()
            self.counters.clear()


Store: TypeAlias = "RedisStore | LocalStore"
_stores: dict[str | None, Store] = {}
_stores_lock = threading.Lock()


def get_store() -> Store:
    """The store CACHE_URL names (one per process): Redis for a redis:// URL, else memory."""
    url = scale_settings.CACHE_URL
    with _stores_lock:
        if url not in _stores:
            if url:
                from drf_scale.cache.redis_store import RedisStore  # the redis extra

                _stores[url] = RedisStore(url)
            else:
                _stores[url] = LocalStore()
        return _stores[url]


@scale_settings.on_change
def _forget_stores() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.retire()
        _stores.clear()
