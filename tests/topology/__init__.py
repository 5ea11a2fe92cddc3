"""The multi-host topology on one machine, in network namespaces (root only).

A bridge ``drfbr0`` (10.77.0.1/24, or the first free 10.77.x.0/24) in the root namespace;
hosts ``drf-app1..3`` (.11-.13) run gunicorn of the reference service on :8000, hosts
``drf-work1..2`` (.21-.22) a Celery worker each. On the bridge's address, private instances
on free ports: PostgreSQL primary + streaming replica with PgBouncer in front (the apps'
DATABASE_URL; their REPLICA_URLS is the replica itself), a Redis master + replica + 3
Sentinels (the representation cache), a Redis broker, HAProxy over the app hosts and
Varnish (xkey) in front of HAProxy.

``topology/up`` and ``topology/down`` (``python -m tests.topology up|down|status``); the
tests' fixture is in conftest.py. Modules: ``netns`` (network), ``state`` (state.json and
teardown), ``services`` (starting the services).
"""
