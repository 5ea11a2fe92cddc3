#!/usr/bin/env bash
# PgBouncer in transaction mode in front of the test PostgreSQL (127.0.0.1:5432),
# listening on 127.0.0.1:6432 with at most 20 server connections. Installs it from
# the OS packages if missing, (re)writes its config, starts it or reloads it, and
# waits until a query goes through. Safe to run any number of times.
#
#   PGBOUNCER_DIR   where the config, log and pid file live (/tmp/drf-scale-pgbouncer)
set -euo pipefail

DIR=${PGBOUNCER_DIR:-/tmp/drf-scale-pgbouncer}
PORT=6432
RUN_AS=postgres  # PgBouncer refuses to run as root
ADMIN=(psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d pgbouncer)

if ! command -v pgbouncer >/dev/null; then
  apt-get update -qq
  # The package's own service stays off: we run our instance with our config.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  service pgbouncer stop >/dev/null 2>&1 || true
fi

mkdir -p "$DIR"
# auth_type trust still needs the user in auth_file; PostgreSQL itself trusts 127.0.0.1.
echo '"postgres" ""' >"$DIR/userlist.txt"
cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
; Any database name, so pytest-django can create and drop its test database.
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $DIR
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
stats_users = postgres
pool_mode = transaction
; At most 20 server connections in all (one user, so max_user_connections caps every database).
default_pool_size = 20
max_db_connections = 20
max_user_connections = 20
max_client_conn = 2000
; Close idle server connections quickly so DROP DATABASE of a test database succeeds
; (PostgreSQL waits 5 s for other sessions of a database to go away).
server_idle_timeout = 2
; Outages (tests/faults): clients get an error at once instead of queueing, so the service
; answers 503 (DatabaseUnavailableMiddleware), and PostgreSQL is used again within half a
; second of answering. After a failed server login PgBouncer waits server_login_retry before
; it tries again, and answers new clients "server login has been failing" meanwhile. With the
; default (15 s) that is up to 15 s of errors after PostgreSQL is back.
server_login_retry = 0.5
; A connection and login to PostgreSQL that take longer are abandoned (default 15 s).
server_connect_timeout = 3
; A client that waited this long for a server connection gets an error (default 120 s). The
; fast failure above is for new clients only: the queries already waiting when PostgreSQL goes
; away wait this long, and a sync worker (gunicorn) with them, cached reads queued behind it.
; 120 s would outlast gunicorn's 30 s worker timeout. 3 s stays well above the queueing of a
; burst (100 clients on 20 server connections wait under 0.3 s).
query_wait_timeout = 3
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
chown -R "$RUN_AS" "$DIR"

if [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null; then
  "${ADMIN[@]}" -c "RELOAD" >/dev/null
elif pg_isready -q -h 127.0.0.1 -p "$PORT"; then
  echo "port $PORT is taken by something other than our PgBouncer ($DIR)" >&2
  exit 1
else
  ulimit -n 4096 2>/dev/null || true  # max_client_conn + server connections
  pgbouncer -d -u "$RUN_AS" "$DIR/pgbouncer.ini"
fi

for _ in $(seq 60); do
  if psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "PgBouncer did not answer on 127.0.0.1:$PORT; log: $DIR/pgbouncer.log" >&2
tail -n 20 "$DIR/pgbouncer.log" >&2 || true
exit 1
