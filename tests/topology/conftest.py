"""The topology for the package's tests: ``up`` once (in-process), ``down`` at the end.

Every test here is marked ``postgres`` and ``once``: it runs in the PostgreSQL pass only,
as the replica and fault tests do. Without root or a binary it is skipped (failed under
CI=true); a topology that is already up (topology/up) is never replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import in_ci
from tests.topology import netns
from tests.topology.services import Topology, missing, up
from tests.topology.state import down, topology_dir

PACKAGE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py skips postgres tests off PostgreSQL
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(PACKAGE):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.once)


def require_topology() -> None:
    """Skip without root or a binary the topology runs (fail under CI=true)."""
    lacking = missing()
    if lacking:
        message = f"the topology needs {', '.join(lacking)}"
        if in_ci():
            pytest.fail(f"{message} and CI=true")
        pytest.skip(message)


@pytest.fixture(scope="package")
def topology() -> Iterator[Topology]:
    require_topology()
    directory = topology_dir()
    if (directory / "state.json").exists() or netns.exists():
        pytest.fail(f"a topology is up ({directory}): run topology/down first")
    try:
        yield up(directory)
    finally:
        down(directory)
