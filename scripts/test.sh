#!/usr/bin/env bash
# The README's test command: set up (scripts/bootstrap.sh) and run the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k tetris -x
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$here/scripts/bootstrap.sh" | tail -n 1)
# Structures for tests come from a local mirror, never the internet: ../shared/structures when it
# is beside the clone (CI), else folders of real structures shipped inside installed packages.
mirror=${TEMPLEARN_STRUCTURE_MIRROR:-}
[ -d "$here/../shared/structures" ] && mirror="$here/../shared/structures${mirror:+:$mirror}"
export TEMPLEARN_STRUCTURE_MIRROR="$mirror"
export TEMPLEARN_QUIET=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec "$venv/bin/python" -m pytest -ra "$@"
