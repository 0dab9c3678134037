#!/usr/bin/env bash
# Build the templearn images (a shared base, then one image per stage) and smoke-test each:
# its --help, and one real stage command on tiny inputs in a bind-mounted folder.
#
#   containers/build.sh [STAGE...]        default: all six stages
#
# Environment:
#   BASE_IMAGE   image the base is built FROM (default debian:bookworm-slim; on GPU hosts
#                nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 for DeepFinder, or
#                nvidia/cuda:12.4.1-devel-ubuntu22.04 for Parakeet). BASE_IMAGE=debootstrap makes
#                a local Debian base with debootstrap + docker import, for hosts with no registry.
#   TAG          image tag (default: the package version), images are templearn-<stage>:TAG
#   DOCKER       docker client (default: the first one that can build with BuildKit)
#   PIP_CERT     CA bundle for pip inside the build (a BuildKit secret, never in a layer);
#                default: the host's /etc/ssl/certs/ca-certificates.crt when present
#   SMOKE=0      build only
# Singularity/Apptainer use the same images: singularity build templearn-tetris.sif docker-daemon://templearn-tetris:TAG
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ALL_STAGES=(nma tetris parakeet-sim imod-recon deepfinder-train pick-eval)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${ALL_STAGES[@]}")
for s in "${stages[@]}"; do
  [ -f "$here/containers/Dockerfile.$s" ] || { echo "build.sh: no stage '$s' (one of: ${ALL_STAGES[*]})" >&2; exit 2; }
done
TAG=${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml" | head -n1)}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }

# A docker client that builds with BuildKit (RUN --mount=type=secret): one with the buildx
# plugin, or a client older than 23 (BuildKit built in).
pick_docker() {
  for c in ${DOCKER:-} docker /usr/bin/docker /usr/local/bin/docker; do
    command -v "$c" >/dev/null || continue
    if "$c" buildx version >/dev/null 2>&1; then echo "$c"; return; fi
    v=$("$c" version --format '{{.Client.Version}}' 2>/dev/null || true)
    case "$v" in 1[0-9].*|20.*|21.*|22.*) echo "$c"; return;; esac
  done
  echo "build.sh: no docker client with BuildKit (install the buildx plugin)" >&2; exit 2
}
DOCKER=$(pick_docker)
export DOCKER_BUILDKIT=1
$DOCKER info >/dev/null 2>&1 || { echo "build.sh: no docker daemon (DOCKER_HOST=${DOCKER_HOST:-unset})" >&2; exit 2; }

# The base image: a local Debian made by debootstrap when there is no registry to pull from.
if [ "$BASE_IMAGE" = debootstrap ]; then
  BASE_IMAGE=templearn-debian:bookworm
  if ! $DOCKER image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    rootfs=${ROOTFS:-$(mktemp -d)/rootfs}
    if [ ! -x "$rootfs/bin/sh" ]; then
      log "debootstrap bookworm into $rootfs (a few minutes)"
      debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
    fi
    log "docker import $BASE_IMAGE"
    tar -C "$rootfs" -c . | $DOCKER import - "$BASE_IMAGE" >/dev/null
  fi
fi

# A clean build context: only what the images need.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/pyproject.toml" "$ctx/"
if [ -f "$here/README.md" ]; then cp "$here/README.md" "$ctx/"; else echo "# templearn" > "$ctx/README.md"; fi
for d in templearn stages orchestrator; do
  tar -C "$here" --exclude='__pycache__' --exclude='*.pyc' -c "$d" | tar -C "$ctx" -x
done
mkdir -p "$ctx/scripts" && cp "$here/scripts/install-parakeet-cpu.sh" "$ctx/scripts/"
secret=()
[ -s "$PIP_CERT" ] && secret=(--secret "id=pipcert,src=$PIP_CERT")

build() {  # name dockerfile [build args...]
  local name=$1 file=$2; shift 2
  local t0=$SECONDS
  log "building $name:$TAG ($file)"
  $DOCKER build -q --network host "${secret[@]}" -f "$here/containers/$file" "$@" -t "$name:$TAG" "$ctx" >/dev/null
  log "built $name:$TAG in $((SECONDS - t0)) s ($($DOCKER image inspect -f '{{.Size}}' "$name:$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build templearn-base Dockerfile.base --build-arg "BASE_IMAGE=$BASE_IMAGE"
for s in "${stages[@]}"; do
  build "templearn-$s" "Dockerfile.$s" --build-arg "BASE=templearn-base:$TAG"
done
[ "${SMOKE:-1}" = 0 ] && exit 0

# Smoke tests: --help, then one real command on tiny inputs in a bind-mounted folder. Stages
# later in the graph use what the earlier ones wrote when those were built in this run.
work=$(mktemp -d)
chmod 777 "$work"
mkdir -p "$work/in"
python3 - "$work/in" <<'PY'
# Two tiny real-looking structures (an alpha helix of 40 residues, a 2-helix bundle) as PDB files,
# so the smoke test needs no download and no package data.
import math, sys
def helix(n, x0=0.0, chain="A", start=1):
    lines = []
    for i in range(n):
        t = i * 100.0 * math.pi / 180.0
        for k, (name, el, dr, dz) in enumerate((("N", "N", -0.4, -0.6), ("CA", "C", 0.0, 0.0), ("C", "C", 0.4, 0.6), ("O", "O", 0.9, 1.1))):
            r = 2.3 + dr
            x, y, z = x0 + r * math.cos(t), r * math.sin(t), 1.5 * i + dz
            lines.append(f"ATOM  {len(lines)+1:5d}  {name:<3s} ALA {chain}{start+i:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           {el}")
    return lines
open(f"{sys.argv[1]}/target.pdb", "w").write("\n".join(helix(40) + helix(40, 10.0, "B")) + "\nEND\n")
open(f"{sys.argv[1]}/distractor.pdb", "w").write("\n".join(helix(20)) + "\nEND\n")
PY
run() { $DOCKER run --rm --network none -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$work:/data" "$@"; }
smoke() {
  local s=$1 img=templearn-$1:$TAG
  run "$img" --help >/dev/null
  case $s in
    nma)          run "$img" variants /data/in/target.pdb --out /data/nma --n-variants 2 --n-modes 3
                  test -s "$work/nma/variants.csv" ;;
    tetris)       run "$img" pack --target /data/in/target.pdb --target-name helix --distractor /data/in/distractor.pdb \
                    --out /data/tetris --box 16 32 32 --voxel-size 8 --resolution 16 --ratio 2 --seed 0
                  test -s "$work/tetris/sample.json" ;;
    parakeet-sim) run "$img" grid --out /data/grid/grid.json && test -s "$work/grid/grid.json"
                  if [ -s "$work/tetris/sample.json" ]; then
                    run "$img" simulate /data/tetris/sample.json --out /data/sim --engine fast --pixel-size 8 --tilt-range 30 --tilt-step 10
                    test -s "$work/sim/tilt_series.mrc"
                  fi ;;
    imod-recon)   if [ -s "$work/sim/tilt_series.mrc" ]; then
                    run "$img" reconstruct /data/sim/tilt_series.mrc --out /data/recon --voxel-size 8
                    test -s "$work/recon/tomogram.mrc"
                  fi ;;
    deepfinder-train) if [ -s "$work/recon/tomogram.mrc" ]; then
                    run "$img" targets /data/tetris/sample.json --tomogram /data/recon/tomogram.mrc --out /data/targets
                    test -s "$work/targets/targets.mrc"
                  fi ;;
    pick-eval)    if [ -s "$work/recon/tomogram.mrc" ]; then
                    run "$img" match /data/recon/tomogram.mrc --template /data/in/target.pdb --out /data/match --angular-step 45
                    test -s "$work/match/picks.star"
                  fi ;;
  esac
  log "smoke test passed: $img"
}
for s in "${stages[@]}"; do smoke "$s"; done
rm -rf "$work"
log "all images built and smoke-tested: ${stages[*]/#/templearn-}"
