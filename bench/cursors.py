"""``python -m bench.cursors PAGE_SIZE DEPTH...``: /api/products/ pages that start deep.

Run from the repository root with the service's environment (DATABASE_URL, SECRET_KEY).
Prints one JSON object: for each depth, the path of the /api/products/ page whose first
row is the row at that depth (0-based) in the api ordering, and that row's id.

Cursors are signed, so they are issued by the view's own paginator (its ordering, its
filter binding, its signer) for the row just before the depth, as its next link would be.
The row is found with one OFFSET query here, outside any measurement.
"""

import json
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from bench.server import EXAMPLE


def path_of(url: str) -> str:
    """``url`` without its scheme and host: the path and the query."""
    return urlsplit(url)._replace(scheme="", netloc="").geturl()


def deep_pages(page_size: int, depths: list[int]) -> dict[int, dict[str, Any]]:
    """``{depth: {"path", "first_id"}}`` for /api/products/?page_size=``page_size``."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from drf_scale.pagination import Cursor
    from shop.api_views import ProductViewSet

    view = ProductViewSet(action="list")
    factory = APIRequestFactory()
    request = Request(
        factory.get("/api/products/", {"page_size": page_size}, HTTP_HOST="127.0.0.1")
    )
    paginator = view.paginator
    queryset = view.queryset.all()
    # Sets the paginator's ordering, filter binding and URL, as a request would; no query.
    paginator.get_page_queryset(queryset, request, view)
    ordering = paginator.current_ordering
    rows = queryset.order_by(*(term.order_by() for term in ordering)).values_list(
        "pk", *(term.attname for term in ordering)
    )
    pages: dict[int, dict[str, Any]] = {}
    for depth in depths:
        window = list(rows[max(depth - 1, 0) : depth + 1])
        if len(window) < min(depth, 1) + 1:
            raise SystemExit(f"bench.cursors: no product at depth {depth}")
        if depth == 0:
            url, first = paginator.base_url, window[0]
        else:
            before, first = window
            url = paginator.encode_cursor(Cursor(tuple(before[1:]), reverse=False))
        pages[depth] = {"path": path_of(url), "first_id": first[0]}
    return pages


def main(argv: list[str]) -> None:
    page_size, *depths = (int(arg) for arg in argv)
    sys.path.insert(0, str(EXAMPLE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    import django

    django.setup()
    print(json.dumps(deep_pages(page_size, depths)))


if __name__ == "__main__":
    main(sys.argv[1:])
