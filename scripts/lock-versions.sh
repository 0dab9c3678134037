#!/usr/bin/env bash
# Record the versions of the environment the suite passed with into constraints.txt, which
# scripts/bootstrap.sh installs from (pip -c), so a fresh machine next month gets what was tested.
# Run after a green scripts/test.sh:   scripts/lock-versions.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${TEMPLEARN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/templearn/venv}
tmp=$(mktemp "$here/.constraints.XXXXXX")
{
  echo "# pip constraints: the versions scripts/test.sh passed with (scripts/lock-versions.sh, $(date -u +%Y-%m-%d), Python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))."
  # not templearn itself; python-parakeet/multem are built by scripts/install-parakeet-cpu.sh
  "$venv/bin/pip" freeze --exclude-editable | grep -viE '^(templearn|python-parakeet|python-multem)([=@ ]|$)' | sort -f
} > "$tmp"
mv "$tmp" "$here/constraints.txt"
echo "constraints.txt: $(grep -vc '^#' "$here/constraints.txt") packages"
