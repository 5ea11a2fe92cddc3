"""A stand-in shipping provider: a real HTTP server with a configurable latency.

    cd example && python -m upstream --port 8001 --latency 0.05

``GET /quote?dest=FR&items=2&value=41.98`` answers, after ``--latency`` seconds,
``{"carrier": "ParcelCo", "price": "9.58", "eta_days": 2}``. ``--status 503`` makes
every quote fail with that status, to play a provider that is down. Tests and the
bench start it with :func:`running`; the async shipping-quote view calls it over
real sockets.
"""

import asyncio
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Any, Send], Awaitable[None]]

EXAMPLE = Path(__file__).resolve().parent.parent
DOMESTIC = {"FR"}  # where the provider sits
EU = {"AT", "BE", "DE", "DK", "ES", "FI", "IE", "IT", "LU", "NL", "PL", "PT", "SE"}
CODE = re.compile(r"^[A-Z]{2}$")


def quote(dest: str, items: int, value: Decimal) -> dict[str, Any]:
    """The provider's price list: a base by zone, per item, plus 1 % insurance."""
    if dest in DOMESTIC:
        carrier, base, eta = "ParcelCo", Decimal("4.90"), 2
    elif dest in EU:
        carrier, base, eta = "ParcelCo", Decimal("8.90"), 4
    else:
        carrier, base, eta = "GlobalShip", Decimal("19.90"), 9
    price = base + Decimal("1.50") * (items - 1) + value / 100
    return {"carrier": carrier, "price": str(price.quantize(Decimal("0.01"))), "eta_days": eta}


def parse_quote_query(query_string: bytes) -> tuple[str, int, Decimal]:
    """``dest``, ``items``, ``value`` from a query string; ValueError when invalid."""
    params = {k: v[-1] for k, v in parse_qs(query_string.decode("latin-1")).items()}
    dest = params.get("dest", "")
    if not CODE.match(dest):
        raise ValueError("dest must be a two-letter country code")
    try:
        items, value = int(params.get("items", "")), Decimal(params.get("value", ""))
    except (ValueError, InvalidOperation):
        raise ValueError("items must be an integer and value a decimal") from None
    if items < 1 or not value.is_finite() or value < 0:
        raise ValueError("items must be at least 1 and value not negative")
    return dest, items, value


def create_app(latency: float = 0.0, status: int = 200) -> App:
    """The ASGI application: /quote after ``latency`` seconds, /health at once."""

    async def respond(send: Send, code: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def app(scope: Scope, receive: Any, send: Send) -> None:
        if scope["path"] == "/health":
            return await respond(send, 200, {"status": "ok"})
        if scope["path"] != "/quote" or scope["method"] != "GET":
            return await respond(send, 404, {"detail": "Not found."})
        try:
            dest, items, value = parse_quote_query(scope["query_string"])
        except ValueError as exc:
            return await respond(send, 400, {"detail": str(exc)})
        await asyncio.sleep(latency)
        if status != 200:
            return await respond(send, status, {"detail": "Quotes are unavailable."})
        await respond(send, 200, quote(dest, items, value))

    return app


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(latency: float = 0.0, status: int = 200, port: int | None = None) -> Iterator[str]:
    """Run the upstream in a subprocess; yield its base URL; stop it on the way out."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "upstream", "--port", str(port)]
    command += ["--latency", str(latency), "--status", str(status)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, cwd=EXAMPLE, stdout=log, stderr=log)
        try:
            _wait_until_healthy(proc, url, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + 15
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    log.seek(0)
    raise RuntimeError(f"upstream did not come up at {url}:\n{log.read().decode()}")
