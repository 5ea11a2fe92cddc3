"""``python -m tests.topology up [--replace] | down | status``, from the repository root.

State lives in ``$TOPOLOGY_DIR`` (default /tmp/drf-scale-topology). ``down`` and ``status``
read only its state.json; ``up`` sets Django up first (it reuses the tests' helpers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

from tests.topology import state as topology_state

ROOT = Path(__file__).resolve().parents[2]


def up(directory: Path, replace: bool) -> int:
    began = time.monotonic()
    sys.path[:0] = [str(ROOT), str(ROOT / "example")]  # as pytest's pythonpath
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from tests.topology.services import TopologyError, up

    try:
        up(directory, replace=replace)
    except TopologyError as error:
        print(error)
        return 1
    except (pytest.fail.Exception, RuntimeError, OSError) as error:
        print(f"up failed: {error}\nlogs and state: {directory}; clean up: topology/down")
        return 1
    print(f"topology up in {time.monotonic() - began:.1f} s")
    status(directory)
    return 0


def status(directory: Path) -> int:
    found = topology_state.State.load(directory)
    if found is None:
        print(f"no topology in {directory}")
        return 1
    ports = found.ports
    print(f"network {found.network}, bridge {found.bridge}; state {found.path}")
    print(f"edge (Varnish)  http://{found.bridge}:{ports.get('varnish')}")
    print(f"balancer        http://{found.bridge}:{ports.get('haproxy')}")
    for name, address in found.hosts.items():
        print(f"{name:15} {address}")
    for name, path in found.clusters.items():
        running = topology_state.postmaster(path)
        alive = running is not None and running[1] is not None
        print(f"  {name:14} port {ports.get(name)!s:<7} {'up' if alive else 'DOWN':5} {path}")
    for name, proc in found.processes.items():
        print(f"  {name:14} pid {proc.pid:<8} {'up' if proc.alive() else 'DOWN':5} {proc.log}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.topology", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--replace", action="store_true", help="up: down a running one first")
    args = parser.parse_args()
    directory = topology_state.topology_dir()
    if args.command == "up":
        return up(directory, args.replace)
    if args.command == "down":
        began = time.monotonic()
        topology_state.down(directory)
        print(f"topology down in {time.monotonic() - began:.1f} s")
        return 0
    return status(directory)


if __name__ == "__main__":
    sys.exit(main())
