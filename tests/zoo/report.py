"""``python -m tests.zoo.report``: each zoo shape's compiled read plan, as a Markdown table.

Per shape: the class's plan (``compile_read_plan``) and the plan the drf_scale view serves a
list with (``get_read_plan()``, built for a staff and a plain user's request, which is where
a serializer shaping its fields per request compiles), with the share of fields compiled and
why the others are not. Needs no database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def setup() -> None:
    """Django with the test settings (what pytest runs with), when not set up yet."""
    from django.apps import apps

    if apps.ready:
        return
    for path in (str(ROOT), str(ROOT / "example")):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def view_plan(shape: Any, staff: bool) -> Any:
    """The plan the shape's drf_scale view serves a list with, for a staff or a plain user
    (None: DRF renders)."""
    from django.contrib.auth import get_user_model
    from django.test import override_settings
    from rest_framework.test import APIRequestFactory

    from tests.zoo.views import SETTINGS

    view = shape.view(scale=True)(action_map={"get": "list"}, args=(), kwargs={}, format_kwarg=None)
    with override_settings(**SETTINGS):
        request = view.initialize_request(APIRequestFactory().get("/zoo/", shape.query))
        request.user = get_user_model()(username="staff" if staff else "user", is_staff=staff)
        view.request = request
        return view.get_read_plan()


def coverage(plan: Any) -> str:
    """``compiled`` and the share of fields compiled (``ReadPlan.coverage`` where it exists)."""
    if plan is None or not plan.compiled:
        return "DRF (0%)"
    share = getattr(plan, "coverage", None)
    if share is None:
        return "compiled"
    return "compiled (100%)" if share == 1 else f"partly ({share:.0%})"


def rows() -> list[dict[str, Any]]:
    """One dict per shape: names, the class's plan, the view's plans, the reasons."""
    setup()
    from drf_scale.fast import compile_read_plan
    from tests.zoo.views import SHAPES

    found = []
    for shape in SHAPES:
        plan = compile_read_plan(shape.serializer)
        staff, user = view_plan(shape, staff=True), view_plan(shape, staff=False)
        reasons = dict.fromkeys(
            reason for p in (plan, staff, user) if p is not None for reason in p.fallback_reasons
        )
        found.append(
            {
                "shape": shape.name,
                "serializer": shape.serializer.__name__,
                "class": coverage(plan),
                "staff": coverage(staff),
                "user": coverage(user),
                "instance_fields": getattr(staff or plan, "instance_fields", ()),
                "reasons": list(reasons),
            }
        )
    return found


def markdown(found: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | serializer | compile_read_plan(cls) | view, staff | view, user "
        "| fields from instances | why |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in found:
        why = "<br>".join(reason.replace("|", "\\|") for reason in row["reasons"]) or "-"
        instance = ", ".join(row["instance_fields"]) or "-"
        lines.append(
            f"| {row['shape']} | {row['serializer']} | {row['class']} | {row['staff']} "
            f"| {row['user']} | {instance} | {why} |"
        )
    return "\n".join(lines)


def main() -> None:
    import logging

    logging.getLogger("drf_scale.fast").setLevel(logging.ERROR)  # the table says it all
    print(markdown(rows()))


if __name__ == "__main__":
    main()
