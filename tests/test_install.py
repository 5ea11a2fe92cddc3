"""The package as a new user gets it: the built wheel and sdist, core dependencies only.

Builds both distributions with uv, installs the wheel into a new environment without extras,
and starts a project there without ROOT_URLCONF. Needs uv and the package index (or uv's
cache); runs once per CI run (marker ``install``), in the SQLite pass.
"""

import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.install

PROJECT = """
import io, json, sys
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework",
                    "drf_scale"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DRF_SCALE=json.loads(sys.argv[1]),
)
import django
django.setup()
from django.core import checks
from django.core.management import call_command
found = {"messages": [[m.id, m.msg, m.hint] for m in checks.run_checks()]}
for module in ("redis", "celery", "drf_scale.aggregates", "drf_scale.cache.redis_store"):
    try:
        __import__(module)
        found[module] = "imported"
    except ImportError as error:
        found[module] = str(error)
if not found["messages"]:
    out = io.StringIO()
    call_command("check", stdout=out)
    found["check"] = out.getvalue().strip()
print(json.dumps(found))
"""


def uv(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "uv", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--quiet", "--out-dir", str(out))
    return out


@pytest.fixture(scope="module")
def core_env(dist, tmp_path_factory) -> Path:
    """A new environment with the wheel and its core dependencies only."""
    env = tmp_path_factory.mktemp("env") / "venv"
    uv("venv", "--quiet", "--python", sys.executable, str(env))
    [wheel] = dist.glob("*.whl")
    uv("pip", "install", "--quiet", "--python", str(env / "bin" / "python"), str(wheel))
    return env


def start(env: Path, drf_scale: dict) -> dict:
    done = subprocess.run(
        [str(env / "bin" / "python"), "-c", PROJECT, json.dumps(drf_scale)],
        cwd=env,  # not the checkout: only what the wheel installed
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_core_install_starts_and_checks_clean(core_env):
    found = start(core_env, {})
    assert found["messages"] == []
    assert found["check"] == "System check identified no issues (0 silenced)."
    assert "No module named 'redis'" in found["redis"]
    assert "No module named 'celery'" in found["celery"]
    assert found["drf_scale.aggregates"] == (
        'drf_scale.aggregates runs on Celery: pip install "drf-scale[celery]"'
    )


def test_a_redis_cache_without_the_extra_is_a_check_naming_it(core_env):
    found = start(core_env, {"CACHE_URL": "redis://127.0.0.1:6379/0"})
    assert found["messages"] == [
        [
            "drf_scale.E050",
            "DRF_SCALE CACHE_URL needs 'redis', which is not installed.",
            'pip install "drf-scale[redis]"',
        ]
    ]


def test_the_wheel_is_typed_and_licensed(dist):
    [wheel] = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "drf_scale/py.typed" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(name for name in names if name.endswith(".dist-info/METADATA")))
        .decode()
    )
    for line in (
        "Requires-Dist: django<6.2,>=5.2",
        "Provides-Extra: redis",
        "Provides-Extra: celery",
        "Classifier: Framework :: Django :: 6.1",
        "Classifier: Programming Language :: Python :: 3.13",
    ):
        assert line in metadata, line


def test_the_sdist_holds_what_building_and_testing_need_and_no_results(dist):
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for needed in ("pyproject.toml", "LICENSE", "CHANGELOG.md", "src/drf_scale/py.typed"):
        assert needed in names, needed
    assert any(name.startswith("tests/") for name in names)
    unwanted = [
        name
        for name in names
        if name.startswith("bench/results/")
        or name.endswith((".png", ".lock", ".sqlite3"))
        or name == "BENCHMARKS.md"
    ]
    assert unwanted == []


def test_the_setup_snippet_in_the_readme_runs_as_written(core_env):
    """The README's settings block, its ``...`` filled in, starts with core dependencies."""
    readme = (ROOT / "README.md").read_text()
    snippet = "INSTALLED_APPS" + readme.split("```python\nINSTALLED_APPS", 1)[1].split("```")[0]
    snippet = re.sub(r"^ *\.\.\.,\n", "", snippet, flags=re.MULTILINE)  # "...," lines
    snippet = snippet.replace("[...,", "[*BASE_APPS,").replace(", ...]", "]")
    code = "\n".join(
        [
            'BASE_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]',
            snippet,
            "from django.conf import settings",
            "settings.configure(INSTALLED_APPS=INSTALLED_APPS, MIDDLEWARE=MIDDLEWARE,",
            "    DRF_SCALE=DRF_SCALE, DATABASES={'default': {",
            "        'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}})",
            "import django",
            "django.setup()",
            "from django.core.management import call_command",
            "call_command('check')",
        ]
    )
    done = subprocess.run(
        [str(core_env / "bin" / "python"), "-c", code],
        cwd=core_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout
