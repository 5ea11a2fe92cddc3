"""Which external services the tests can reach.

``python -m tests.services postgres redis`` exits 0 when all of them answer. Under
CI=true a service that is down is an error, never a silent skip.
"""

import os
import socket
import sys

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PORTS = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "pgbouncer": ("127.0.0.1", 6432),  # .ci/pgbouncer.sh
}


def reachable(service: str) -> bool:
    try:
        with socket.create_connection(PORTS[service], timeout=1):
            return True
    except OSError:
        return False


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


if __name__ == "__main__":
    down = [name for name in sys.argv[1:] if not reachable(name)]
    if not down:
        sys.exit(0)
    if in_ci():
        sys.exit(f"{', '.join(down)} not reachable and CI=true: refusing to skip their tests")
    print(f"{', '.join(down)} not reachable: the tests that need them are skipped here")
    sys.exit(1)
