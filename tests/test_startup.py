"""Startup without side effects, query recording without the app, the first write of a worker.

Each scenario runs in a fresh interpreter: what ``django.setup()`` imports or connects cannot be
seen from a process that already served requests.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from rest_framework.test import APIClient

from shop.models import Brand
from tests import services
from tests.factories import make_catalog

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a new interpreter with the repository on the path; its last line is JSON."""
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'example'}", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_setup_imports_no_urlconf_and_opens_no_connection():
    found = run_python(
        """
        import json, sys, django
        django.setup()
        from django.db import connections
        from drf_scale.cache.invalidation import registry
        print(json.dumps({
            "urlconf": "example.urls" in sys.modules,
            "registered": len(registry.roots),
            "connected": any(connections[a].connection is not None for a in connections),
            "redis": "redis" in sys.modules,
        }))
        """,
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    assert found == {"urlconf": False, "registered": 0, "connected": False, "redis": False}


MINIMAL_SETTINGS = """
    from django.conf import settings
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", *APPS],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DRF_SCALE=DRF_SCALE,
    )
    import django
    django.setup()
"""


def minimal(apps: list[str], code: str, drf_scale: dict | None = None, before: str = "") -> dict:
    """``code`` after django.setup() (``before`` before it) in a project without ROOT_URLCONF."""
    head = f"{before}\nAPPS = {apps!r}\nDRF_SCALE = {drf_scale or {}!r}\n"
    body = textwrap.dedent(MINIMAL_SETTINGS) + textwrap.dedent(code)
    return run_python(head + body, DJANGO_SETTINGS_MODULE="")


def test_check_passes_without_root_urlconf():
    found = minimal(
        ["rest_framework", "drf_scale"],
        """
        import io, json
        from django.core.management import call_command
        out = io.StringIO()
        call_command("check", stdout=out)
        print(json.dumps({"out": out.getvalue()}))
        """,
    )
    assert "no issues" in found["out"]


COUNT_QUERIES = """
    import json
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from drf_scale.queries import capture_queries, query_budget, QueryBudgetExceeded
    call_command("migrate", verbosity=0)
    group = Group.objects.create(name="g")
    for n in range(3):
        User.objects.create(username=f"u{n}").groups.add(group)
    with capture_queries() as log:
        for user in User.objects.all():
            list(user.groups.all())
    try:
        with query_budget(1):
            list(User.objects.all()), list(Group.objects.all())
        over = False
    except QueryBudgetExceeded:
        over = True
    print(json.dumps({"count": log.count, "over_budget": over}))
"""


def test_capture_queries_counts_the_same_with_and_without_the_app():
    with_app = minimal(["rest_framework", "drf_scale"], COUNT_QUERIES)
    without_app = minimal(["rest_framework"], COUNT_QUERIES)
    assert with_app == without_app == {"count": 4, "over_budget": True}


def test_missing_redis_extra_is_a_check_naming_it():
    """The check runs in this environment, where redis may be installed: hide it."""
    found = minimal(
        ["rest_framework", "drf_scale"],
        """
        import json, sys
        sys.modules["redis"] = None  # as if the redis extra were not installed
        from django.core import checks
        errors = [m for m in checks.run_checks() if m.id.startswith("drf_scale.")]
        print(json.dumps([[m.id, m.msg, m.hint] for m in errors]))
        """,
        drf_scale={"CACHE_URL": "redis://127.0.0.1:6379/0"},
    )
    assert found == [
        [
            "drf_scale.E050",
            "DRF_SCALE CACHE_URL needs 'redis', which is not installed.",
            'pip install "drf-scale[redis]"',
        ]
    ]


def test_cache_view_modules_replace_the_urlconf_import_at_the_first_connection():
    found = run_python(
        """
        import json, sys, django
        from django.conf import settings
        django.setup()
        from django.db import connection
        from django.test import override_settings
        from drf_scale.cache.invalidation import registry
        with override_settings(DRF_SCALE={**settings.DRF_SCALE,
                                          "CACHE_VIEW_MODULES": ["shop.api_views"]}):
            connection.ensure_connection()
        print(json.dumps({
            "urlconf": "example.urls" in sys.modules,
            "roots": sorted(model.__name__ for model in registry.roots),
        }))
        """,
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    assert found == {"urlconf": False, "roots": ["Product"]}


def test_missing_celery_is_a_check_only_for_apps_that_declare_aggregates():
    """django.contrib.postgres has an ``aggregates`` module too: it is not ours."""
    found = minimal(
        ["rest_framework", "drf_scale", "django.contrib.postgres", "shop"],
        """
        import json
        from django.core import checks
        errors = [m for m in checks.run_checks() if m.id.startswith("drf_scale.")]
        print(json.dumps([[m.id, m.msg, m.hint] for m in errors]))
        """,
        before='import sys; sys.modules["celery"] = None  # as if the extra were missing',
    )
    assert found == [
        [
            "drf_scale.E051",
            "shop.aggregates needs 'celery', which is not installed.",
            'pip install "drf-scale[celery]"',
        ]
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_first_write_invalidates_what_it_makes_stale():
    """A process that never served a request renames a brand: the cached product goes stale
    in no reader's eyes, though that process learnt the cached views only at its first query."""
    if not services.reachable("redis"):
        pytest.fail("Redis not reachable") if services.in_ci() else pytest.skip("needs Redis")
    catalog = make_catalog(products=2)
    product = catalog["products"][0]
    client = APIClient()
    url = f"/api/products/{product.pk}/"
    assert client.get(url)["X-Cache"] == "miss"
    cached = client.get(url)
    assert cached["X-Cache"] == "hit"
    old_name = cached.json()["brand"]["name"]

    test_db = f"/{connection.settings_dict['NAME']}"
    found = run_python(
        f"""
        import json, django
        django.setup()
        from drf_scale.cache.invalidation import registry
        before = len(registry.roots)
        from shop.models import Product
        brand = Product.objects.get(pk={product.pk}).brand
        brand.name = "Renamed by a worker"
        brand.save()
        print(json.dumps({{"registered_at_setup": before, "registered": len(registry.roots)}}))
        """,
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=urlsplit(os.environ["DATABASE_URL"])._replace(path=test_db).geturl(),
    )
    assert found["registered_at_setup"] == 0 and found["registered"] > 0

    fresh = client.get(url)
    assert fresh["X-Cache"] == "miss"
    assert fresh.json()["brand"]["name"] == "Renamed by a worker" != old_name
    assert Brand.objects.get(pk=product.brand_id).name == "Renamed by a worker"
