"""Private services for the fault tests, each on a free port in a temp dir, always stopped.

Nothing here touches the shared services on the standard ports (PostgreSQL 5432, Redis 6379,
RabbitMQ 5672, PgBouncer 6432): the fault tests break their own instances.

- :class:`PostgresCluster`: ``initdb`` and ``pg_ctl`` of the newest ``/usr/lib/postgresql/*``,
  run as the ``postgres`` OS user when we are root, trust authentication.
- :class:`PgBouncer`: transaction mode in front of it, with :data:`PGBOUNCER_SETTINGS`, the
  settings ``.ci/pgbouncer.sh`` uses too.
- Redis: :class:`tests.test_cache_outage.RedisServer`.
- :class:`Service`: the reference service under real gunicorn (``tests.test_asgi.gunicorn``).
- :class:`BrandWriter`: another process of the service that renames a brand in a loop.

Every wait is bounded polling with a deadline that fails with the service's log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.processes import ManagedProcess, wait_until
from tests.test_asgi import EXAMPLE, gunicorn, manage, service_env
from tests.test_cache_outage import REDIS_SERVER, RedisServer, free_port

__all__ = [
    "BrandWriter",
    "PgBouncer",
    "PostgresCluster",
    "RedisServer",
    "Service",
    "missing_binaries",
    "private_dir",
    "require_binaries",
    "serve_shop",
]

OS_USER = "postgres"  # PostgreSQL refuses to run as root, PgBouncer too
PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
RUNUSER = shutil.which("runuser")

# PgBouncer in transaction mode, tuned so the service sees an outage as fast errors (503s)
# and is back within about a second once PostgreSQL answers again. .ci/pgbouncer.sh uses the
# same values and explains them.
PGBOUNCER_SETTINGS = {
    "pool_mode": "transaction",
    "default_pool_size": "10",
    "max_client_conn": "500",
    # After a failed server login PgBouncer waits this long before it tries again (15 s by
    # default): PostgreSQL back after a restart is used within 0.5 s.
    "server_login_retry": "0.5",
    # A server that does not accept the connection and login in 3 s is given up (15 s).
    "server_connect_timeout": "3",
    # A client waits at most 3 s for a server connection, then gets an error (120 s): the
    # fast failure above is for new clients, the queries waiting when PostgreSQL goes away
    # wait this long (and a sync worker with them).
    "query_wait_timeout": "3",
    "server_idle_timeout": "2",
    "ignore_startup_parameters": "extra_float_digits",
    "log_connections": "0",
    "log_disconnections": "0",
}


def postgres_bin() -> Path | None:
    """The bin directory of the newest /usr/lib/postgresql/<version> with initdb and pg_ctl."""
    found = []
    for directory in Path("/usr/lib/postgresql").glob("*/bin"):
        version = directory.parent.name
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            found.append((int(version) if version.isdigit() else 0, directory))
    return max(found)[1] if found else None


def missing_binaries() -> list[str]:
    missing = []
    if postgres_bin() is None:
        missing.append("initdb/pg_ctl (/usr/lib/postgresql/*/bin)")
    if PGBOUNCER is None:
        missing.append("pgbouncer")
    if REDIS_SERVER is None:
        missing.append("redis-server")
    if os.geteuid() == 0 and RUNUSER is None:
        missing.append("runuser")
    return missing


def require_binaries(purpose: str, *, pgbouncer: bool = True) -> None:
    """Skip the calling test without what ``missing_binaries()`` lists (fail under CI)."""
    from tests.services import in_ci

    missing = [name for name in missing_binaries() if pgbouncer or name != "pgbouncer"]
    if missing:
        message = f"{purpose} need {', '.join(missing)} (apt-get install -y pgbouncer)"
        if in_ci():
            pytest.fail(f"{message} and CI=true")
        pytest.skip(message)


def as_owner(*command: str | Path) -> list[str]:
    """``command`` run as the postgres OS user when we are root, else as ourselves."""
    args = [str(part) for part in command]
    if os.geteuid() == 0:
        assert RUNUSER is not None
        return [RUNUSER, "-u", OS_USER, "--", *args]
    return args


def private_dir(prefix: str) -> Path:
    """A new directory under /tmp that the postgres OS user owns (pytest's tmp_path is
    root's, and closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix=f"drf-scale-faults-{prefix}-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(OS_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run(command: list[str], what: str, log: Callable[[], str] = str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stdout}\n{done.stderr}\n{log()}"
        )
    return done.stdout


class PostgresCluster:
    """A private PostgreSQL: initdb, start, stop, on ``host`` (127.0.0.1) and a free port;
    clients and replication from ``network`` (a CIDR) are trusted too."""

    def __init__(
        self, directory: Path, host: str = "127.0.0.1", network: str | None = None
    ) -> None:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        self.initdb, self.pg_ctl = bin_dir / "initdb", bin_dir / "pg_ctl"
        self.directory, self.port = directory, free_port()
        self.host, self.network = host, network
        self.data, self.log = directory / "data", directory / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def logs(self) -> str:
        return tail(self.log)

    def init(self) -> None:
        run(
            as_owner(self.initdb, "-D", self.data, "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--locale=C", "--no-sync"),
            "initdb",
        )  # fmt: skip
        if self.network:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.network} trust\n")
                hba.write(f"host replication all {self.network} trust\n")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={self.host} "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        run(
            as_owner(self.pg_ctl, "-D", self.data, "-l", self.log, "-o", options, "-W", "start"),
            "pg_ctl start",
            self.logs,
        )
        wait_until(self.answers, f"PostgreSQL on port {self.port}", 30, self.logs)

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: sessions are terminated, as a restart does)."""
        if self.running():
            run(
                as_owner(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"),
                "pg_ctl stop",
                self.logs,
            )

    def running(self) -> bool:
        status = subprocess.run(
            as_owner(self.pg_ctl, "-D", self.data, "status"), capture_output=True, check=False
        )
        return status.returncode == 0

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database,
            autocommit=True, connect_timeout=2,
        )  # fmt: skip

    def answers(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def standby(self, directory: Path) -> PostgresCluster:
        """A streaming replica of this running cluster (``pg_basebackup -R``), started on a
        port of its own in ``directory``."""
        replica = PostgresCluster(directory, self.host, self.network)
        backup = self.initdb.parent / "pg_basebackup"
        run(
            as_owner(backup, "-h", self.host, "-p", self.port, "-U", "postgres",
                     "-D", replica.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"),
            "pg_basebackup",
            self.logs,
        )  # fmt: skip
        replica.start()
        return replica

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def serve_shop(postgres: PostgresCluster, database: str, products: int, token: str) -> None:
    """Start ``postgres`` (initialized) with the reference service's ``database``: migrated,
    seeded with ``products`` products, and ``token`` the API token of its staff user."""
    postgres.init()
    postgres.start()
    postgres.create_database(database)
    env = service_env(postgres.url(database), SERVER_MODE="wsgi")
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):  # never the shared services
        env.pop(name, None)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "seed", "--products", str(products), "--seed", "1", "-v", "0")
    with postgres.connect(database) as conn:
        created = conn.execute(
            "INSERT INTO authtoken_token (key, user_id, created) "
            "SELECT %s, id, now() FROM auth_user WHERE username = 'admin' AND is_staff",
            [token],
        )
        assert created.rowcount == 1, "the seed made no staff user 'admin'"


class PgBouncer(ManagedProcess):
    """A private PgBouncer (transaction mode) on ``host`` in front of ``server_port``, in the
    foreground so it can be stopped, hung (SIGSTOP) and resumed. ``databases`` is the
    ini's [databases] section (by default every name goes to ``server_port``)."""

    def __init__(self, directory: Path, server_port: int, host: str = "127.0.0.1") -> None:
        self.directory, self.server_port, self.port = directory, server_port, free_port()
        self.host = host
        self.databases = {"*": f"host={host} port={server_port}"}
        self.ini, self.log = directory / "pgbouncer.ini", directory / "pgbouncer.log"
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def logs(self) -> str:
        return tail(self.log)

    def write_config(self) -> None:
        (self.directory / "userlist.txt").write_text('"postgres" ""\n')
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.directory / "userlist.txt"),
            "admin_users": "postgres",
            "stats_users": "postgres",
            "logfile": str(self.log),
            **PGBOUNCER_SETTINGS,
        }
        lines = ["[databases]", *(f"{name} = {dsn}" for name, dsn in self.databases.items())]
        lines += ["", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam(OS_USER)
            for path in (self.ini, self.directory / "userlist.txt"):
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        assert PGBOUNCER is not None
        self.write_config()
        user = ["-u", OS_USER] if os.geteuid() == 0 else []  # it drops root itself
        self.process = subprocess.Popen(
            [PGBOUNCER, *user, str(self.ini)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, f"PgBouncer on port {self.port}", 30, self.logs)

    def answers(self) -> bool:
        """Its admin console answers (PostgreSQL behind it may be down)."""
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"pgbouncer exited with {self.process.returncode}:\n{self.logs()}")
        try:
            with psycopg.connect(
                host=self.host, port=self.port, user="postgres", dbname="pgbouncer",
                autocommit=True, connect_timeout=2, cursor_factory=psycopg.ClientCursor,
            ) as conn:  # fmt: skip
                conn.execute("SHOW VERSION")
            return True
        except psycopg.Error:
            return False


class Service:
    """The reference service under gunicorn (sync workers, ``--preload``), its log kept."""

    def __init__(self, directory: Path, database_url: str, **env: str) -> None:
        self.log = directory / "gunicorn.log"
        self.env = service_env(database_url, SERVER_MODE="wsgi", **env)
        self.env.pop("CELERY_BROKER_URL", None)  # aggregates run in-process
        # gunicorn reads these too: the workers' output (Django's log) goes to our file.
        self.env["GUNICORN_CMD_ARGS"] = f"--error-logfile {self.log} --capture-output"
        self.url = ""
        self._stack = contextlib.ExitStack()

    def logs(self, lines: int = 60) -> str:
        """The log's last lines, after every server error's traceback (they may be older)."""
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        starts = [i for i, line in enumerate(text) if "Internal Server Error" in line]
        errors = ["\n".join(text[i : i + 80]) for i in starts[:3]]
        return "\n\n".join([*errors, tail(self.log, lines)])

    def __enter__(self) -> Service:
        try:
            self.url = self._stack.enter_context(gunicorn(["example.wsgi"], self.env))
        except pytest.fail.Exception as error:
            pytest.fail(f"{error}\n{self.logs()}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


BRAND_WRITER = """
import os, sys, time
import django
django.setup()
from shop.models import Brand
pk, prefix, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
n = 0
while not os.path.exists(stop):
    n += 1
    brand = Brand.objects.get(pk=pk)
    brand.name = f"{prefix}{n}"
    brand.save()  # autocommit: the invalidation is sent right after the commit
    print(n, time.monotonic(), flush=True)
    time.sleep(0.02)
"""


class BrandWriter:
    """Another process of the service (``python -c``, the service's environment) renaming
    brand ``pk`` to ``prefix<n>``, n = 1, 2, ... until stopped. ``latest()`` is the highest
    n it has reported committed (its save, commit and invalidation returned)."""

    def __init__(self, env: dict[str, str], pk: int, prefix: str, directory: Path) -> None:
        self.env, self.pk, self.prefix = env, pk, prefix
        self.stop_file = directory / f"stop-brand-writer-{pk}"
        self.stderr = directory / f"brand-writer-{pk}.log"
        self.process: subprocess.Popen | None = None
        self.committed: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def logs(self) -> str:
        return tail(self.stderr)

    def latest(self) -> int:
        with self._lock:
            return self.committed[-1][0] if self.committed else 0

    def __enter__(self) -> BrandWriter:
        self.stop_file.unlink(missing_ok=True)
        with open(self.stderr, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BRAND_WRITER, str(self.pk), self.prefix,
                 str(self.stop_file)],
                cwd=EXAMPLE, env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: self.latest() >= 1 or self._exited(), "the brand writer", 30, self.logs)
        if self._exited():
            pytest.fail(f"the brand writer exited:\n{self.logs()}")
        return self

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if match := re.fullmatch(r"(\d+) ([\d.]+)", line.strip()):
                with self._lock:
                    self.committed.append((int(match[1]), float(match[2])))

    def __exit__(self, *exc: object) -> None:
        self.stop_file.touch()
        assert self.process is not None
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._reader is not None:
            self._reader.join(5)
        if self.process.returncode != 0 and exc[0] is None:
            pytest.fail(f"the brand writer failed ({self.process.returncode}):\n{self.logs()}")
