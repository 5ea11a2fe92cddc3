"""drf_scale.db: the DATABASES entry of each mode, the connection checks, the fork hook."""

import os
import subprocess
import sys
import textwrap

import pytest
from django.core.checks import Tags, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from drf_scale.checks import check_connection_settings, check_pool_capacity, check_settings
from drf_scale.db import database_config, parse_url
from tests.services import PORTS

PG = "postgres://app:s%40cret@db.internal:6543/shop?connect_timeout=5"

# The checks read settings.DATABASES; overriding it here changes no open connection.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_parse_url_reads_every_part_and_query_options():
    assert parse_url(PG) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "s@cret",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"connect_timeout": "5"},
    }
    assert parse_url("sqlite:////tmp/shop.sqlite3")["NAME"] == "/tmp/shop.sqlite3"
    with pytest.raises(ImproperlyConfigured, match="scheme"):
        parse_url("mysql://root@localhost/shop")


def test_direct_mode_keeps_connections_under_wsgi_only():
    wsgi = database_config(PG)
    assert wsgi["CONN_MAX_AGE"] == 60
    assert wsgi["CONN_HEALTH_CHECKS"] is True
    assert wsgi["DRF_SCALE_MODE"] == "direct"
    assert "pool" not in wsgi["OPTIONS"]
    assert database_config(PG, server="asgi")["CONN_MAX_AGE"] == 0
    assert database_config("sqlite:///db.sqlite3")["CONN_MAX_AGE"] == 60


def test_pool_mode_sizes_the_pool_and_keeps_no_connection_itself():
    config = database_config(PG, "pool", application_name="shop")
    assert config["OPTIONS"] == {
        "connect_timeout": "5",
        "application_name": "shop",
        "pool": {"min_size": 2, "max_size": 10, "timeout": 5.0},
    }
    assert config["CONN_MAX_AGE"] == 0
    sized = database_config(PG, "pool", server="asgi", pool={"max_size": 4, "max_idle": 60})
    pool = {"min_size": 2, "max_size": 4, "timeout": 5.0, "max_idle": 60}
    assert sized["OPTIONS"]["pool"] == pool
    assert sized["CONN_MAX_AGE"] == 0


def test_pgbouncer_mode_is_safe_for_transaction_pooling():
    config = database_config(PG, "pgbouncer")
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert "prepare_threshold" in config["OPTIONS"]
    assert config["OPTIONS"]["prepare_threshold"] is None
    assert config["CONN_MAX_AGE"] == 0
    assert config["DRF_SCALE_MODE"] == "pgbouncer"


@pytest.mark.parametrize(
    ("url", "mode", "kwargs", "error"),
    [
        (PG, "bouncer", {}, "mode must be one of"),
        (PG, "direct", {"server": "uwsgi"}, "Server must be one of"),
        ("sqlite:///db.sqlite3", "pool", {}, "needs PostgreSQL"),
        ("sqlite:///db.sqlite3", "pgbouncer", {}, "needs PostgreSQL"),
        (PG, "pgbouncer", {"pool": {"max_size": 4}}, "mode 'pool' only"),
    ],
)
def test_database_config_refuses_what_cannot_work(url, mode, kwargs, error):
    with pytest.raises(ImproperlyConfigured, match=error):
        database_config(url, mode, **kwargs)


def test_every_mode_passes_the_checks(settings):
    for server in ("wsgi", "asgi"):
        settings.DRF_SCALE = {"SERVER_MODE": server}
        for mode in ("direct", "pool", "pgbouncer"):
            settings.DATABASES = {"default": database_config(PG, mode, server=server)}
            assert check_connection_settings() == [], (server, mode)


def test_an_unknown_server_mode_is_a_settings_error(settings):
    settings.DRF_SCALE = {"SERVER_MODE": "ASGI"}
    assert ids(check_settings()) == ["drf_scale.E062"]
    assert check_connection_settings() == []  # it cannot tell which mode is meant


def test_e021_persistent_connections_under_asgi(settings):
    settings.DATABASES = {"default": database_config(PG), "other": {"CONN_MAX_AGE": None}}
    settings.DRF_SCALE = {"SERVER_MODE": "asgi"}
    assert ids(check_connection_settings()) == ["drf_scale.E021", "drf_scale.E021"]
    settings.DRF_SCALE = {"SERVER_MODE": "wsgi"}
    assert check_connection_settings() == []
    # The registered check runs with the others.
    settings.DRF_SCALE = {"SERVER_MODE": "asgi"}
    assert "drf_scale.E021" in ids(run_checks(tags=["drf_scale"]))


def test_e022_pool_with_persistent_connections(settings):
    config = database_config(PG, "pool")
    settings.DATABASES = {"default": {**config, "CONN_MAX_AGE": 60}}
    assert ids(check_connection_settings()) == ["drf_scale.E022"]
    settings.DATABASES = {"default": config}
    assert check_connection_settings() == []


def test_e023_e024_server_side_cursors_and_prepared_statements_through_pgbouncer(settings):
    config = database_config(PG, "pgbouncer")
    options = {**config["OPTIONS"], "prepare_threshold": 5}
    settings.DATABASES = {"default": {**config, "DISABLE_SERVER_SIDE_CURSORS": False}}
    assert ids(check_connection_settings()) == ["drf_scale.E023"]
    settings.DATABASES = {"default": {**config, "OPTIONS": options}}
    assert ids(check_connection_settings()) == ["drf_scale.E024"]
    # The same settings without a transaction-mode pooler in front are fine.
    direct = database_config(PG)
    settings.DATABASES = {"default": {**direct, "OPTIONS": {"prepare_threshold": 5}}}
    assert check_connection_settings() == []


def test_e025_needs_a_known_worker_count_and_a_database_check(settings, monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    settings.DATABASES = {"default": database_config(PG, "pool", pool={"max_size": 500})}
    assert check_pool_capacity(databases=["default"]) == []  # workers unknown
    settings.DRF_SCALE = {"WORKERS": 4}
    assert check_pool_capacity() == []  # databases not checked


@pytest.mark.postgres
@pytest.mark.django_db
def test_e025_pool_size_times_workers_over_max_connections(settings, monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
        cursor.execute("SHOW superuser_reserved_connections")
        available = max_connections - int(cursor.fetchone()[0])
    url = "postgres://postgres@127.0.0.1/unused"
    settings.DATABASES = {"default": database_config(url, "pool", pool={"max_size": 10})}
    monkeypatch.setenv("WEB_CONCURRENCY", str(max_connections // 10 + 1))
    errors = run_checks(tags=[Tags.database], databases=["default"])
    assert ids(errors) == ["drf_scale.E025"]
    assert f"over the {available} the server allows" in errors[0].msg
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert check_pool_capacity(databases=["default"]) == []
    settings.DRF_SCALE = {"WORKERS": max_connections}  # the setting wins over the variable
    assert ids(check_pool_capacity(databases=["default"])) == ["drf_scale.E025"]


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import django
    from django.conf import settings
    from drf_scale.db import database_config, post_fork

    settings.configure(DATABASES={"default": database_config(
        os.environ["TEST_DB_URL"], "pool", pool={"min_size": 1, "max_size": 2})})
    django.setup()
    from django.db import connection

    def backend_pid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    parent = backend_pid()
    read, write = os.pipe()
    if os.fork() == 0:
        if sys.argv[1] == "hook":
            post_fork(server=None, worker=None)
        os.write(write, str(backend_pid()).encode())
        os._exit(0)
    child = int(os.read(read, 32))
    os.wait()
    print("shared" if child == parent else "own")
    """
)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(("hook", "expected"), [("hook", "own"), ("none", "shared")])
def test_post_fork_gives_each_worker_its_own_pooled_connection(hook, expected):
    """Without the hook a forked worker talks over its parent's pooled socket."""
    host, port = PORTS["postgres"]  # straight to PostgreSQL, even in the PgBouncer pass
    url = f"postgres://{connection.settings_dict['USER']}@{host}:{port}/{connection.settings_dict['NAME']}"
    env = {**os.environ, "TEST_DB_URL": url}
    env.pop("DJANGO_SETTINGS_MODULE")
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, hook],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
