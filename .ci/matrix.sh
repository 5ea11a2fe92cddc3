#!/usr/bin/env bash
# The support matrix: per combination, an environment in .matrix/ built by uv from the pyenv
# interpreter, then the SQLite pass and the PostgreSQL + Redis pass of the suite.
#   bash .ci/matrix.sh                 every combination
#   bash .ci/matrix.sh 3.12:6.0:3.18   one (python:django:drf)
# The main environment (.venv: Python 3.11, Django 5.2, the newest DRF) is `make test`'s.
set -euo pipefail
cd "$(dirname "$0")/.."

COMBINATIONS=("$@")
[ ${#COMBINATIONS[@]} -gt 0 ] || COMBINATIONS=(
  3.11:5.2:3.16  # the oldest DRF we support, on the LTS
  3.12:6.0:3.18
  3.13:6.1:3.18
)
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL_TEST=${REDIS_URL_TEST:-redis://127.0.0.1:6379/0}
UV="python3 -m uv"
$UV --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

interpreter() {  # the pyenv interpreter of a minor version, else one on PATH
  local prefix
  if prefix=$(pyenv prefix "$1" 2>/dev/null) && [ -x "$prefix/bin/python$1" ]; then
    echo "$prefix/bin/python$1"
  else
    command -v "python$1"
  fi
}

summary=()
status=0
for combination in "${COMBINATIONS[@]}"; do
  IFS=: read -r python django drf <<<"$combination"
  env=".matrix/py${python/./}-django${django/./}-drf${drf/./}"
  echo "=== Python $python, Django $django, DRF $drf ($env)"
  if [ ! -x "$env/bin/python" ]; then
    $UV venv --quiet --python "$(interpreter "$python")" "$env"
  fi
  # The locked versions of everything but Django and DRF, which the combination overrides.
  $UV export --frozen --quiet --no-hashes --no-emit-project --all-groups --all-extras \
    --output-file "$env/requirements.txt"
  printf 'django==%s.*\ndjangorestframework==%s.*\n' "$django" "$drf" >"$env/overrides.txt"
  $UV pip install --quiet --python "$env/bin/python" -r "$env/requirements.txt" \
    --override "$env/overrides.txt" -e ".[redis,celery]"
  "$env/bin/python" -c "import django, rest_framework, sys; print('versions:', \
sys.version.split()[0], django.get_version(), rest_framework.__version__)"
  passes=(sqlite)
  if "$env/bin/python" -m tests.services postgres redis; then passes+=(postgres)
  elif [ "${CI:-}" = true ]; then status=1; fi
  for pass in "${passes[@]}"; do
    if [ "$pass" = sqlite ]; then
      run=("$env/bin/pytest" -q -p no:cacheprovider -m "not postgres and not install and not once")
    else
      run=(env DATABASE_URL="$PG_URL" REDIS_URL="$REDIS_URL_TEST"
        "$env/bin/pytest" -q -p no:cacheprovider -m "not install and not once")
    fi
    log="$env/$pass.log"
    if "${run[@]}" >"$log" 2>&1; then result=ok; else result=FAILED; status=1; fi
    tail -n 30 "$log" | grep -E "^(FAILED|ERROR)" || true
    summary+=("Python $python, Django $django, DRF $drf, $pass: $result: $(tail -n 1 "$log")")
  done
done
printf '%s\n' "=== matrix" "${summary[@]}"
exit $status
