"""The topology's services, private instances on free ports on the bridge's address.

Started by :func:`up`, in three threads where they do not depend on each other: PostgreSQL
(primary seeded with the shop, streaming replica, PgBouncer in front of both); Redis
(master, replica, 3 Sentinels, the Celery broker); HAProxy and Varnish. Then the hosts'
gunicorn and Celery workers, with every address in their environment.
Every wait is bounded polling on a readiness check. Needs Django set up (``tests.settings``):
it reuses the fault tests' helpers.
"""

from __future__ import annotations

import contextlib
import csv
import os
import pwd
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis
from celery import Celery

from tests.faults.cluster import (
    OS_USER,
    PGBOUNCER,
    PgBouncer,
    PostgresCluster,
    missing_binaries,
    serve_shop,
    tail,
)
from tests.processes import wait_until
from tests.test_asgi import EXAMPLE, service_env
from tests.test_cache_outage import REDIS_SERVER, free_port
from tests.test_edge import VARNISHD
from tests.topology import netns
from tests.topology.state import Proc, State, down, signal_all, start_time

DATABASE, PRODUCTS = "shop", 300
TOKEN = "7" * 40  # the API token of the seed's staff user "admin"
SENTINEL_SERVICE = "drfcache"
APP_PORT = 8000
HEALTH = "/api/products/?page_size=1"  # HAProxy's check: the app and its database answer
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
EDGE_VCL = Path(__file__).with_name("edge.vcl")
READY = 60.0  # seconds any service has to become ready
APPS = [name for name in netns.HOSTS if name.startswith("drf-app")]
WORKERS = [name for name in netns.HOSTS if name.startswith("drf-work")]

HAPROXY_CFG = """global
  log stderr format raw local0 notice
  stats socket {socket} mode 600 level admin

defaults
  mode http
  log global
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  retries 2
  option redispatch
  retry-on conn-failure empty-response response-timeout 503

frontend web
  bind {bridge}:{port}
  default_backend apps

backend apps
  balance roundrobin
  option httpchk GET {health}
  default-server check inter 500 fall 2 rise 2
{servers}
"""


def missing() -> list[str]:
    """What this machine lacks to run the topology (root, binaries)."""
    found = [] if os.geteuid() == 0 else ["root (network namespaces)"]
    found += missing_binaries()
    for binary in (HAPROXY, VARNISHD, "/usr/bin/ip"):
        if not Path(binary).exists():
            found.append(binary)
    return found


def short(host: str) -> str:
    """``drf-app1`` -> ``app1``: the host's name in logs, X-Served-By and Celery."""
    return host.removeprefix("drf-")


class TopologyError(RuntimeError):
    pass


class Topology:
    """A running topology, from its state: its URLs, and what tests break and restore."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.directory = Path(state.directory)
        self._lock = threading.Lock()

    # Addresses.

    @property
    def bridge(self) -> str:
        return self.state.bridge

    @property
    def edge_url(self) -> str:
        return f"http://{self.bridge}:{self.state.ports['varnish']}"

    @property
    def lb_url(self) -> str:
        return f"http://{self.bridge}:{self.state.ports['haproxy']}"

    @property
    def app_urls(self) -> list[str]:
        return [f"http://{self.state.hosts[host]}:{APP_PORT}" for host in APPS]

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def broker_url(self) -> str:
        return self.state.env["CELERY_BROKER_URL"]

    def env(self, host: str) -> dict[str, str]:
        """The service's environment on ``host``."""
        extra = dict(self.state.env)
        return service_env(extra.pop("DATABASE_URL"), **extra, SERVED_BY=short(host))

    # Processes.

    def spawn(self, name: str, proc: Proc) -> None:
        """Start ``proc`` (on a host: with the service's environment) and record it."""
        proc.spawn(self.env(proc.netns) if proc.netns else None)
        with self._lock:
            self.state.processes[name] = proc
            self.state.save()

    def wait(self, name: str, condition: Callable[[], Any], what: str) -> None:
        """Poll ``condition`` while process ``name`` runs; fail with its log otherwise."""
        proc = self.state.processes[name]

        def ready() -> Any:
            if not proc.alive():
                pytest.fail(f"{name} exited:\n{tail(Path(proc.log))}")
            return condition()

        wait_until(ready, what, READY, lambda: tail(Path(proc.log)))

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (its group: a gunicorn's or Celery's workers too)."""
        proc = self.state.processes[name]
        signal_all([(proc.pid, proc.started)], signal.SIGKILL)

    def owned(self, name: str) -> Path:
        """A new directory ``name`` that the postgres OS user owns."""
        path = self.directory / name
        path.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            os.chown(path, user.pw_uid, user.pw_gid)
        return path

    def record(self, **ports: int) -> None:
        with self._lock:
            self.state.ports.update(ports)
            self.state.save()

    # PostgreSQL and PgBouncer.

    def cluster(self, name: str) -> PostgresCluster:
        """The PostgreSQL ``primary`` or ``replica``, to stop and start."""
        found = PostgresCluster(Path(self.state.clusters[name]), self.bridge, self.state.network)
        found.port = self.state.ports[name]
        return found

    def start_database(self, primary: PostgresCluster, bouncer: PgBouncer) -> PostgresCluster:
        """The primary seeded with the shop, its streaming replica (returned), PgBouncer in
        front of both."""
        with self._lock:
            self.state.clusters["primary"] = str(primary.directory)
            self.state.clusters["replica"] = str(self.directory / "replica")
        self.record(primary=primary.port)
        serve_shop(primary, DATABASE, PRODUCTS, self.state.token)
        replica = primary.standby(self.owned("replica"))
        self.record(replica=replica.port)
        bouncer.databases = {
            DATABASE: f"host={self.bridge} port={primary.port} dbname={DATABASE}",
            f"{DATABASE}_replica": f"host={self.bridge} port={replica.port} dbname={DATABASE}",
        }
        bouncer.start()
        assert bouncer.process is not None and PGBOUNCER is not None
        proc = Proc([PGBOUNCER, str(bouncer.ini)], str(bouncer.log), pid=bouncer.process.pid)
        proc.started = start_time(proc.pid)
        with self._lock:
            self.state.processes["pgbouncer"] = proc
            self.state.save()
        return replica

    def stop_replica(self) -> None:
        self.cluster("replica").stop("immediate")

    def start_replica(self) -> None:
        self.cluster("replica").start()

    # Redis.

    def redis_client(self, port: int) -> redis.Redis:
        return redis.Redis(self.bridge, port, socket_timeout=2, socket_connect_timeout=2)

    def start_redis_server(self, name: str, *config: str, sentinel: bool = False) -> int:
        """redis-server ``name`` (a Sentinel) on the bridge and a free port, answering."""
        directory, port = self.directory / name, free_port()
        directory.mkdir()
        conf = directory / "redis.conf"
        lines = [f"port {port}", f"bind {self.bridge}", "protected-mode no", f"dir {directory}"]
        conf.write_text("\n".join([*lines, *config]) + "\n")
        assert REDIS_SERVER is not None
        argv = [REDIS_SERVER, str(conf), *(["--sentinel"] if sentinel else [])]
        self.spawn(name, Proc(argv, str(directory / "redis.log"), str(directory)))
        self.record(**{name: port})
        client = self.redis_client(port)
        self.wait(name, lambda: self.answers(client), f"{name} to answer PING")
        return port

    @staticmethod
    def answers(client: redis.Redis) -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(client.ping())
        return False

    def start_redis(self) -> None:
        """A master and its replica, 3 Sentinels that know both and each other, a broker."""
        data = ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
        master = self.start_redis_server("redis-master", *data)
        self.start_redis_server(
            "redis-replica", *data, f"replicaof {self.bridge} {master}",
            f"replica-announce-ip {self.bridge}",
        )  # fmt: skip
        self.start_redis_server("broker", *data)
        watch = [
            f"sentinel announce-ip {self.bridge}",
            f"sentinel monitor {SENTINEL_SERVICE} {self.bridge} {master} 2",
            f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000",
            f"sentinel failover-timeout {SENTINEL_SERVICE} 3000",
        ]
        sentinels = [
            self.start_redis_server(f"sentinel{i}", *watch, sentinel=True) for i in (1, 2, 3)
        ]
        for i, port in enumerate(sentinels, 1):
            self.wait(
                f"sentinel{i}",
                lambda port=port: self.sentinel_sees(port, master),  # type: ignore[misc]
                f"sentinel{i} to know the master, its replica and 2 other Sentinels",
            )

    def sentinel_sees(self, port: int, master: int) -> bool:
        try:
            with self.redis_client(port) as client:
                state = cast("dict[str, Any]", client.sentinel_master(SENTINEL_SERVICE))
        except redis.RedisError:
            return False
        known = (state["ip"], state["port"], state["num-slaves"], state["num-other-sentinels"])
        return known == (self.bridge, master, 1, 2) and not state["is_sdown"]

    def cache_master(self) -> tuple[str, int] | None:
        """Where the first Sentinel that answers says the representation cache's master is."""
        for i in range(1, 4):
            port = self.state.ports[f"sentinel{i}"]
            with (
                contextlib.suppress(redis.RedisError, TypeError),
                self.redis_client(port) as client,
            ):
                host, master = client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
                return host.decode(), int(master)
        return None

    def kill_redis_master(self) -> None:
        self.kill("redis-master")

    # HAProxy and Varnish.

    def start_edge(self) -> None:
        """HAProxy over the app hosts, Varnish (xkey VCL) in front of it."""
        lb_port, edge_port = free_port(), free_port()
        directory = self.directory / "haproxy"
        directory.mkdir()
        servers = [f"  server {short(h)} {self.state.hosts[h]}:{APP_PORT}" for h in APPS]
        config = directory / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(
                socket=directory / "haproxy.sock", bridge=self.bridge, port=lb_port,
                health=HEALTH, servers="\n".join(servers),
            )
        )  # fmt: skip
        self.spawn("haproxy", Proc([HAPROXY, "-db", "-f", str(config)], str(directory / "log")))
        self.record(haproxy=lb_port)
        self.wait("haproxy", lambda: self.balancer_servers() is not None, "HAProxy's stats")

        directory = self.directory / "varnish"
        directory.mkdir(mode=0o755)  # varnishd reads the VCL as its own user
        vcl = directory / "edge.vcl"
        network = self.state.network.split("/")
        purgers = f'"{network[0]}"/{network[1]}; '
        vcl.write_text(EDGE_VCL.read_text() % {"host": self.bridge, "port": lb_port,
                                                "purgers": purgers})  # fmt: skip
        argv = [VARNISHD, "-F", "-n", str(directory / "n"), "-T", "none",
                "-a", f"{self.bridge}:{edge_port}", "-f", str(vcl), "-s", "malloc,64m"]  # fmt: skip
        self.spawn("varnish", Proc(argv, str(directory / "log")))
        self.record(varnish=edge_port)
        self.wait("varnish", self.edge_purges, "Varnish to answer a PURGE")

    def edge_purges(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            purge = httpx.request("PURGE", self.edge_url, headers={"xkey-purge": "none"})
            return purge.status_code == 200
        return False

    def balancer_servers(self) -> dict[str, str] | None:
        """Each app server's state in HAProxy (``UP``, ``DOWN`` ...), from its stats socket."""
        try:
            with socket.socket(socket.AF_UNIX) as stats:
                stats.settimeout(2)
                stats.connect(str(self.directory / "haproxy" / "haproxy.sock"))
                stats.sendall(b"show stat\n")
                text = b"".join(iter(lambda: stats.recv(65536), b"")).decode()
        except OSError:
            return None
        rows = csv.DictReader(text.removeprefix("# ").splitlines())
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "apps" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    # The hosts: gunicorn and Celery.

    def app_proc(self, host: str) -> Proc:
        bind = f"{self.state.hosts[host]}:{APP_PORT}"
        argv = [sys.executable, "-m", "gunicorn", "example.wsgi", "--config", "gunicorn.conf.py",
                "--workers", "2", "--threads", "4", "--preload", "--bind", bind,
                "--control-socket", str(self.directory / f"{short(host)}.ctl")]  # fmt: skip
        return Proc(argv, str(self.directory / f"{short(host)}.log"), str(EXAMPLE), host)

    def worker_proc(self, host: str) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "example", "worker", "--concurrency", "2",
                "--hostname", f"celery@{short(host)}", "--loglevel", "INFO"]  # fmt: skip
        return Proc(argv, str(self.directory / f"{short(host)}.log"), str(EXAMPLE), host)

    def app_answers(self, host: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            url = f"http://{self.state.hosts[host]}:{APP_PORT}{HEALTH}"
            return httpx.get(url, timeout=5).status_code == 200
        return False

    def wait_app(self, host: str) -> None:
        """The host answers, and HAProxy sends it requests."""
        name = short(host)
        self.wait(name, lambda: self.app_answers(host), f"{name} to answer {HEALTH}")
        self.wait(
            name,
            lambda: (self.balancer_servers() or {}).get(name) == "UP",
            f"HAProxy to see {name} UP",
        )

    def workers_answering(self, names: list[str]) -> set[str]:
        """Which of the Celery nodes ``names`` answer ``inspect ping``."""
        with Celery("topology", broker=self.broker_url, set_as_current=False) as app:
            replies = app.control.ping(destination=names, timeout=1, limit=len(names))
        return {node for reply in replies for node in reply}

    def kill_app(self, n: int) -> None:
        self.kill(f"app{n}")

    def start_app(self, n: int) -> None:
        host = f"drf-app{n}"
        if not self.state.processes[short(host)].alive():
            self.spawn(short(host), self.app_proc(host))
        self.wait_app(host)

    def kill_worker(self, n: int) -> None:
        self.kill(f"work{n}")

    def start_worker(self, n: int) -> None:
        host = f"drf-work{n}"
        if not self.state.processes[short(host)].alive():
            self.spawn(short(host), self.worker_proc(host))
        node = f"celery@{short(host)}"
        self.wait(short(host), lambda: self.workers_answering([node]), f"{node} to answer")

    # All of it.

    def start(self) -> None:
        primary = PostgresCluster(self.owned("primary"), self.bridge, self.state.network)
        bouncer = PgBouncer(self.owned("pgbouncer"), primary.port, self.bridge)
        self.record(pgbouncer=bouncer.port)
        with ThreadPoolExecutor(3) as pool:
            database = pool.submit(self.start_database, primary, bouncer)
            cache, edge = pool.submit(self.start_redis), pool.submit(self.start_edge)
            database.result()
            cache.result()
            edge.result()
            ports = self.state.ports
            sentinels = ",".join(f"{self.bridge}:{ports[f'sentinel{i}']}" for i in range(1, 4))
            self.state.env = {
                "DATABASE_URL": bouncer.url(DATABASE),
                "DB_MODE": "pgbouncer",
                "REPLICA_URLS": bouncer.url(f"{DATABASE}_replica"),
                "REDIS_URL": f"redis://{self.bridge}:{ports['redis-master']}/0",
                "CACHE_URL": f"redis+sentinel://{sentinels}/{SENTINEL_SERVICE}",
                "CELERY_BROKER_URL": f"redis://{self.bridge}:{ports['broker']}/0",
                "EDGE_PURGE_URLS": self.edge_url,
                "ALLOWED_HOSTS": "*",
                "REPLICA_MAX_LAG": "5",
                "CELERY_VISIBILITY_TIMEOUT": "10",  # a killed worker's messages move on
                "SERVER_MODE": "wsgi",
            }
            for host in APPS:
                self.spawn(short(host), self.app_proc(host))
            for host in WORKERS:
                self.spawn(short(host), self.worker_proc(host))
        for host in APPS:
            self.wait_app(host)
        nodes = [f"celery@{short(host)}" for host in WORKERS]
        wait_until(
            lambda: self.workers_answering(nodes) == set(nodes),
            "the Celery workers to answer inspect ping",
            READY,
            lambda: "\n".join(tail(Path(self.state.processes[short(h)].log)) for h in WORKERS),
        )


def up(directory: Path, *, replace: bool = False) -> Topology:
    """Start the whole topology with its state in ``directory``; refuse if one is up (down it
    first with ``replace``)."""
    began = time.monotonic()
    if (directory / "state.json").exists() or netns.exists():
        if not replace:
            raise TopologyError(f"a topology is up ({directory}): down it first, or --replace")
        down(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    network = netns.choose_network()
    bridge, hosts = netns.addresses(network)
    state = State(str(directory), str(network), bridge, hosts, token=TOKEN)
    state.save()
    netns.create(network)
    topology = Topology(state)
    topology.start()
    state.seconds = round(time.monotonic() - began, 1)
    state.save()
    return topology
