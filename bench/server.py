"""The benchmark dataset and the gunicorn process that serves the reference service."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from bench.load import LIST_PAGE_SIZE

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
DETAIL_SAMPLE = 1000
START_TIMEOUT_S = 30.0

# Run inside the service (manage.py shell): the product count, a fixed random
# sample of product ids for the detail scenario, and the database server.
_INSPECT = f"""
import json, random
from django.db import connection
from shop.models import Product
ids = list(Product.objects.order_by("id").values_list("id", flat=True))
version = ".".join(map(str, connection.get_database_version()))
print(json.dumps({{
    "products": len(ids),
    "ids": random.Random(1).sample(ids, min(len(ids), {DETAIL_SAMPLE})),
    "database": f"{{connection.display_name}} {{version}}",
}}))
"""


class ServerError(RuntimeError):
    """The service could not be started."""


@dataclass(frozen=True)
class Dataset:
    """What the service serves: product count, sample ids, database server."""

    products: int
    ids: list[int]
    database: str


@dataclass(frozen=True)
class DeepPage:
    """A /api/products/ page that starts deep: its path (with a cursor), its first row's id."""

    path: str
    first_id: int


def service_env(database_url: str) -> dict[str, str]:
    """The environment of the service: ours, with the database chosen and DEBUG off."""
    return {**os.environ, "DATABASE_URL": database_url, "DEBUG": "0"}


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database of ``database_url`` if it does not exist."""
    url = urlsplit(database_url)
    if not url.scheme.startswith("postgres"):
        return
    name = unquote(url.path.lstrip("/"))
    admin_url = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` of the reference service and return its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return done.stdout


def inspect(env: dict[str, str]) -> Dataset:
    """Read the dataset the service would serve."""
    out = manage(env, "shell", "-v", "0", "-c", _INSPECT)
    return Dataset(**json.loads(out.strip().splitlines()[-1]))


def prepare_dataset(env: dict[str, str], products: int) -> Dataset:
    """Migrate, then seed ``products`` products unless exactly that many exist."""
    manage(env, "migrate", "--noinput", "-v", "0")
    dataset = inspect(env)
    if dataset.products != products:
        print(f"seeding {products:,} products (found {dataset.products:,})", file=sys.stderr)
        manage(env, "seed", "--products", str(products), "--seed", "1", "--reset")
        dataset = inspect(env)
    return dataset


def deep_pages(env: dict[str, str], depths: list[int]) -> dict[int, DeepPage]:
    """The /api/products/ page at each depth, from the service's own paginator (bench.cursors)."""
    if not depths:
        return {}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cursors", str(LIST_PAGE_SIZE), *map(str, depths)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    pages = json.loads(done.stdout.strip().splitlines()[-1])
    return {int(depth): DeepPage(**page) for depth, page in pages.items()}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log_path: Path, lines: int = 20) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_answering(proc: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Poll ``base_url`` until any HTTP response comes back (a 404 will do)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"gunicorn exited with {proc.returncode}:\n{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(base_url + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise ServerError(f"gunicorn did not answer in {START_TIMEOUT_S:.0f} s:\n{_log_tail(log_path)}")


WSGI_APP = ("example.wsgi", "--worker-class", "sync")
ASGI_APP = ("example.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker")


@contextmanager
def serve(
    env: Mapping[str, str], workers: int, log_path: Path, app: Sequence[str] = WSGI_APP
) -> Iterator[str]:
    """Serve the reference service with gunicorn (sync workers unless ``app`` says otherwise);
    yield its base URL.

    Its output goes to ``log_path``; it is stopped on the way out, whatever happened.
    """
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", *app, "--workers", str(workers)]
    command += ["--bind", f"127.0.0.1:{port}"]
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C reaches the harness, which stops gunicorn below.
        proc = subprocess.Popen(
            command, cwd=EXAMPLE, env=dict(env), stdout=log, stderr=log, start_new_session=True
        )
        try:
            wait_until_answering(proc, base_url, log_path)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
