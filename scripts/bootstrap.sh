#!/usr/bin/env bash
# Set up everything templearn needs on a fresh Debian machine with Python >= 3.10:
# a virtual environment with the project and all stages (and the test tools), plus python-parakeet
# built for CPU (with PyPI's CUDA compiler when the machine has none), and Nextflow (from Maven
# Central when none is on PATH). Idempotent: a second run only checks.
#   TEMPLEARN_VENV   where the environment lives (default ~/.cache/templearn/venv); outside the
#                    clone so CI and later clones on the same machine reuse it.
#   TEMPLEARN_NO_PARAKEET=1  skip the Parakeet build (its tests are then skipped, saying why).
# Prints the venv path on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${TEMPLEARN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/templearn/venv}
py=${PYTHON:-python3}
log() { echo "[bootstrap] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip wheel "setuptools>=68" >&2
fi
stamp="$venv/.templearn-deps"
# constraints.txt: the versions the suite last passed with (scripts/lock-versions.sh keeps it current)
want=$(cat "$here/pyproject.toml" "$here/constraints.txt" 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing templearn[all,test] (first time: about 3 minutes)"
  "$venv/bin/pip" install -q -c "$here/constraints.txt" -e "$here[all,test]" >&2
  echo "$want" > "$stamp"
elif ! "$venv/bin/python" -c "import templearn, sys; sys.exit(0 if templearn.__file__.startswith('$here/') else 1)" 2>/dev/null; then
  "$venv/bin/pip" install -q --no-deps -e "$here" >&2   # same deps, another clone
fi

# The Nextflow linter for the pipeline tests lives apart: it needs protobuf >= 5, TensorFlow 2.13 < 5.
if [ ! -d "$venv/reftrace-lib/reftrace" ]; then
  log "installing reftrace (Nextflow linter) into $venv/reftrace-lib"
  "$venv/bin/pip" install -q --target "$venv/reftrace-lib" "reftrace>=0.6" >&2
fi

cufft=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -n 1 || true)
if [ -z "${TEMPLEARN_NO_PARAKEET:-}" ] && ! LD_LIBRARY_PATH="$cufft" "$venv/bin/python" -c "import parakeet, multem" 2>/dev/null; then
  # with the system's CUDA compiler, or with the one from PyPI's NVIDIA wheels when there is none
  log "building python-parakeet for CPU (about 5-7 minutes, once per machine)"
  bash "$here/scripts/install-parakeet-cpu.sh" "$venv" >&2
fi
# Nextflow for pipeline.nf: one already on PATH is used as it is; otherwise a pinned release from Maven Central.
if ! command -v nextflow >/dev/null && [ ! -x "$venv/bin/nextflow" ]; then
  if command -v java >/dev/null && command -v mvn >/dev/null; then
    log "resolving Nextflow from Maven Central (once per machine, about a minute)"
    bash "$here/scripts/install-nextflow.sh" "$venv" || log "warning: Nextflow could not be installed: the pipeline.nf runs will skip"
  else
    log "no nextflow, java or mvn: the pipeline.nf runs will skip (install Nextflow: https://www.nextflow.io)"
  fi
fi
echo "$venv"
