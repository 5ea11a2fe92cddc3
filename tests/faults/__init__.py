"""Fault tests over real HTTP: private PostgreSQL, PgBouncer and Redis, broken on purpose."""
