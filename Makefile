# Two commands a new machine needs: `make demo` serves the reference service on
# embedded defaults, `make test` runs the linters and the whole test suite.
VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL_TEST ?= redis://127.0.0.1:6379/0
PGBOUNCER_URL ?= postgres://postgres@127.0.0.1:6432/test
UPSTREAM_LATENCY ?= 0.05
WORKERS ?= 2
# Without Redis the representation cache lives in process memory: the demo runs one process.
DEMO_WORKERS := $(if $(REDIS_URL),$(WORKERS),1)
DEMO_PRODUCTS ?= 2000

.PHONY: venv demo demo-asgi upstream test test-sqlite test-postgres test-pgbouncer test-matrix \
	audit bench lint

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --quiet
	touch $@

demo: venv
	cd example && ../$(PY) manage.py migrate --noinput -v 0
	cd example && ../$(PY) manage.py collectstatic --noinput -v 0
	cd example && ../$(PY) manage.py seed --products $(DEMO_PRODUCTS) --if-empty
	@echo ""
	@echo "Serving on http://127.0.0.1:8000 (gunicorn, $(DEMO_WORKERS) workers x 4 threads). Try:"
	@echo "  http://127.0.0.1:8000/naive/products/     DRF defaults (the baseline)"
	@echo "  http://127.0.0.1:8000/api/products/       the same contract with drf_scale"
	@echo "  http://127.0.0.1:8000/floor/products/     hand-written values() + orjson"
	@echo "  http://127.0.0.1:8000/ninja/products/     Django Ninja"
	@echo "  http://127.0.0.1:8000/api/docs/           Swagger UI (log in as admin / admin)"
	@echo ""
	cd example && ../$(VENV)/bin/gunicorn example.wsgi --workers $(DEMO_WORKERS) --threads 4 \
		--bind 127.0.0.1:8000

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The whole suite: lint, the main environment's passes (the install test in the SQLite pass),
# then the support matrix (.ci/matrix.sh: other Pythons, Djangos and DRFs).
test: lint test-sqlite test-postgres test-pgbouncer test-matrix

test-sqlite: venv
	$(VENV)/bin/pytest -m "not postgres"

test-matrix:
	bash .ci/matrix.sh

test-postgres: venv
	@if $(PY) -m tests.services postgres redis; then \
		DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_URL_TEST) $(VENV)/bin/pytest -m "not install"; \
	elif [ "$$CI" = "true" ]; then exit 1; fi

# The suite again on PostgreSQL, through PgBouncer in transaction mode (.ci/pgbouncer.sh).
test-pgbouncer: venv
	@if $(PY) -m tests.services postgres redis pgbouncer; then \
		DATABASE_URL=$(PGBOUNCER_URL) DB_MODE=pgbouncer REDIS_URL=$(REDIS_URL_TEST) \
		$(VENV)/bin/pytest -m "not install and not once"; \
	elif [ "$$CI" = "true" ]; then exit 1; fi

# The query audit on a small seeded database: /api/ must be clean, /naive/ must be caught.
AUDIT_DB := $(abspath .audit.sqlite3)
audit: venv
	rm -f $(AUDIT_DB)
	cd example && export DATABASE_URL=sqlite:///$(AUDIT_DB) && \
		../$(PY) manage.py migrate -v 0 && \
		../$(PY) manage.py seed --products 300 --seed 1 >/dev/null 2>&1 && \
		../$(PY) manage.py scale_audit --prefix /api/ && \
		if ../$(PY) manage.py scale_audit --prefix /naive/ > /dev/null 2>&1; then \
			echo "scale_audit missed the N+1s of /naive/"; exit 1; \
		else echo "scale_audit caught the N+1s of /naive/, as it must"; fi

demo-asgi: venv
	cd example && SERVER_MODE=asgi ../$(VENV)/bin/gunicorn example.asgi:application \
		-k uvicorn_worker.UvicornWorker --workers $(DEMO_WORKERS) --bind 127.0.0.1:8000

upstream: venv
	cd example && ../$(PY) -m upstream --port 8001 --latency $(UPSTREAM_LATENCY)

bench: venv
	$(PY) -m bench $(ARGS)
