"""pytest fixtures for query budgets and constant-query assertions.

Registered through the ``pytest11`` entry point ``drf_scale``, so installing drf-scale makes
them available::

    def test_list(client, query_budget):
        with query_budget(4):
            client.get("/api/products/")

    def test_list_scales(client, assert_constant_queries):
        assert_constant_queries(lambda size: client.get(f"/api/products/?page_size={size}"))
"""

from collections.abc import Callable
from typing import Any

import pytest

__all__: list[str] = []


@pytest.fixture
def query_budget() -> Callable[..., Any]:
    """``drf_scale.queries.query_budget``: ``with query_budget(n):`` fails past n queries."""
    from drf_scale.queries import query_budget

    return query_budget


@pytest.fixture
def assert_constant_queries() -> Callable[..., None]:
    """``drf_scale.queries.assert_constant_queries``: fails when queries grow with size."""
    from drf_scale.queries import assert_constant_queries

    return assert_constant_queries
