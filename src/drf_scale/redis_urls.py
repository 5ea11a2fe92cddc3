"""CACHE_URL's Sentinel and Cluster forms, parsed without redis-py (the settings check runs
without it).

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]
    redis+cluster://[[user]:password@]host:port[,host:port...]

Sentinel: the hosts are Sentinels (port 26379 when omitted); the password and db are the
master's. Cluster: the hosts are nodes to start from (port 6379 when omitted); db 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

__all__ = [
    "CLUSTER_SCHEME",
    "SENTINEL_SCHEME",
    "ClusterURL",
    "SentinelURL",
    "parse_cluster_url",
    "parse_sentinel_url",
    "parse_url",
]

SENTINEL_SCHEME = "redis+sentinel://"
SENTINEL_PORT = 26379
CLUSTER_SCHEME = "redis+cluster://"
CLUSTER_PORT = 6379


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
    parts = _split(url, SENTINEL_SCHEME)
    sentinels = _hosts(parts.netloc, SENTINEL_PORT)
    service, _, db = parts.path.removeprefix("/").partition("/")
    if not service:
        raise ValueError("no service name (redis+sentinel://host:port/<service>)")
    if db and not db.isdigit():
        raise ValueError(f"the db must be a number, not {db!r}")
    options = parse_qs(parts.query, strict_parsing=bool(parts.query))
    if unknown := options.keys() - {"sentinel_password"}:
        raise ValueError(f"unknown options {sorted(unknown)}: only sentinel_password")
    return SentinelURL(
        sentinels,
        unquote(service),
        int(db or 0),
        *_credentials(url),
        options.get("sentinel_password", [None])[-1],
    )


@dataclass(frozen=True)
class ClusterURL:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None


def parse_cluster_url(url: str) -> ClusterURL:
    """The parts of a redis+cluster:// URL; ValueError says what is wrong with it."""
    parts = _split(url, CLUSTER_SCHEME)
    if parts.path.strip("/") or parts.query:
        raise ValueError("a cluster URL names its nodes only (a cluster has db 0 only)")
    return ClusterURL(_hosts(parts.netloc, CLUSTER_PORT), *_credentials(url))


def parse_url(url: str) -> SentinelURL | ClusterURL | None:
    """A Sentinel or Cluster URL's parts; None for a plain Redis URL (redis-py reads it)."""
    if url.startswith(SENTINEL_SCHEME):
        return parse_sentinel_url(url)
    if url.startswith(CLUSTER_SCHEME):
        return parse_cluster_url(url)
    return None


def _split(url: str, scheme: str) -> SplitResult:
    if not url.startswith(scheme):
        raise ValueError(f"not a {scheme} URL")
    return urlsplit(url)


def _hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """The comma-separated ``host[:port]`` list of a URL's authority, credentials aside."""
    hosts = []
    for address in netloc.rpartition("@")[2].split(","):
        host = urlsplit(f"//{address}")  # its port raises ValueError when out of range
        if not host.hostname:
            raise ValueError(f"no host in address {address!r}")
        hosts.append((host.hostname, host.port or default_port))
    return tuple(hosts)


def _credentials(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    return username, unquote(parts.password) if parts.password is not None else None
