"""CACHE_URL's Redis Sentinel form, parsed without redis-py (the settings check runs without it).

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]

The hosts are Sentinels (port 26379 when omitted); the password and db are the master's.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SENTINEL_SCHEME", "SentinelURL", "parse_sentinel_url"]

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a redis+sentinel:// URL; ValueError says what is wrong with it."""
    if not url.startswith(SENTINEL_SCHEME):
        raise ValueError(f"not a {SENTINEL_SCHEME} URL")
    parts = urlsplit(url)
    sentinels = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host = urlsplit(f"//{address}")  # its port raises ValueError when out of range
        if not host.hostname:
            raise ValueError(f"no host in sentinel address {address!r}")
        sentinels.append((host.hostname, host.port or SENTINEL_PORT))
    service, _, db = parts.path.removeprefix("/").partition("/")
    if not service:
        raise ValueError("no service name (redis+sentinel://host:port/<service>)")
    if db and not db.isdigit():
        raise ValueError(f"the db must be a number, not {db!r}")
    options = parse_qs(parts.query, strict_parsing=bool(parts.query))
    if unknown := options.keys() - {"sentinel_password"}:
        raise ValueError(f"unknown options {sorted(unknown)}: only sentinel_password")
    return SentinelURL(
        tuple(sentinels),
        unquote(service),
        int(db or 0),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
        options.get("sentinel_password", [None])[-1],
    )
