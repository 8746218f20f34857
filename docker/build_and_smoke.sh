#!/usr/bin/env bash
# Build the image and check that it really serves: what .ci/run does after the tests.
#
#   docker/build_and_smoke.sh                 # CPU image nmt:cpu, built and smoke-tested
#   VARIANT=cuda docker/build_and_smoke.sh    # CUDA image nmt:cuda, built only (no GPU here)
#
# 1. a Docker engine: Debian's docker.io installed when missing, dockerd started (with
#    --bridge=none: builds and runs use the host's network, so no container network is
#    made and all test traffic stays on 127.0.0.1);
# 2. the base image: debian:bookworm-slim made from Debian's packages with debootstrap
#    when it is not there (no registry needed);
# 3. the image, with this machine's pip CA bundle and local PyTorch CPU wheel passed to
#    the build stage only (docker/build-extra/, ignored by git);
# 4. the container, run as `docker run` would with a toy checkpoint mounted at /models:
#    healthy by its own HEALTHCHECK, /translate and /v1/translate answered from the host,
#    its process not root, `docker stop` clean (exit code 0).
# Figures (size, build time, time to healthy, memory) go to stdout and $REPORT.
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANT=${VARIANT:-cpu}
IMAGE=${IMAGE:-nmt:$VARIANT}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/nmt-smoke.XXXXXX)}
REPORT=${REPORT:-$WORK/report.txt}
TORCH_VERSION=$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' pyproject.toml)
CONTAINER=nmt-smoke-$$
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "[build_and_smoke] $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
report() { echo "$*" | tee -a "$REPORT"; }
seconds_since() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

ensure_engine() {
    if ! command -v dockerd >/dev/null; then
        say "installing Debian's docker.io"
        $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
    fi
    if ! docker info >/dev/null 2>&1; then
        say "starting dockerd (log: $WORK/dockerd.log)"
        $SUDO sh -c "nohup dockerd --bridge=none >'$WORK/dockerd.log' 2>&1 &"
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
        cat "$WORK/dockerd.log" >&2
        fail "dockerd did not start"
    fi
}

ensure_base() {
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
    [ "$BASE_IMAGE" = debian:bookworm-slim ] || fail "base image $BASE_IMAGE is missing"
    command -v debootstrap >/dev/null \
        || { $SUDO apt-get update -q && $SUDO apt-get install -y -q debootstrap; }
    say "making $BASE_IMAGE from Debian's packages (debootstrap --variant=minbase bookworm)"
    local root="$WORK/rootfs"
    $SUDO debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$WORK/debootstrap.log" \
        || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
    $SUDO tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
    $SUDO rm -rf "$root"
}

# Build arguments that let the build stage use this machine's pip setup, if it has one.
build_args=()
pip_setting() { python3 -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.$1='\(.*\)'$/\1/p" | head -1; }
fill_build_extra() {
    local cert links wheel
    find docker/build-extra -mindepth 1 ! -name README.md -delete
    cert=$(pip_setting cert)
    if [ -n "$cert" ] && [ -f "$cert" ]; then
        cp "$cert" docker/build-extra/ca-bundle.crt
        build_args+=(--build-arg PIP_CERT=/tmp/build-extra/ca-bundle.crt)
    fi
    links=$(pip_setting find-links)
    if [ "$VARIANT" = cpu ] && [ -n "$links" ]; then
        # shellcheck disable=SC2086  # pip's find-links is a list of folders
        wheel=$(find $links -maxdepth 1 -name "torch-${TORCH_VERSION}+cpu-cp311-*.whl" 2>/dev/null | head -1)
        if [ -n "$wheel" ]; then
            cp "$wheel" docker/build-extra/
            # the local wheel beats PyPI's build of the same version (its +cpu label sorts higher)
            build_args+=(--build-arg TORCH_INDEX_URL=https://pypi.org/simple)
        fi
    fi
    if [ "$VARIANT" = cuda ]; then
        build_args+=(--build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu130}")
    fi
}

build_image() {
    local start
    start=$(date +%s.%N)
    say "building $IMAGE (log: $WORK/build.log)"
    docker build --network host -f docker/Dockerfile -t "$IMAGE" "${build_args[@]}" . >"$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log" >&2; fail "docker build"; }
    report "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}'), built in $(seconds_since "$start") s"
}

http() { "$PYTHON" -c "$1" "$PORT"; }

smoke_test() {
    local models start status
    models="$WORK/models"
    mkdir -p "$models"
    "$PYTHON" tests/toy.py "$WORK/toy" >/dev/null 2>"$WORK/toy.log" || { cat "$WORK/toy.log" >&2; fail "toy model"; }
    cp "$WORK/toy/run/best.pt" "$models/toy.pt"
    chmod -R a+rX "$models"
    PORT=$("$PYTHON" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    trap 'docker rm -f "$CONTAINER" >/dev/null 2>&1 || true' EXIT
    start=$(date +%s.%N)
    docker run -d --name "$CONTAINER" --network host -e NMT_PORT="$PORT" \
        -v "$models:/models:ro" "$IMAGE" >/dev/null
    local ready=""
    for _ in $(seq 120); do
        [ -z "$ready" ] && http "import sys, httpx; httpx.get(f'http://127.0.0.1:{sys.argv[1]}/ready').raise_for_status()" 2>/dev/null \
            && ready=$(seconds_since "$start")
        status=$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")
        [ "$status" = healthy ] && break
        [ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] || break
        sleep 0.5
    done
    [ "$status" = healthy ] || { docker logs "$CONTAINER" >&2; fail "container not healthy ($status)"; }
    report "ready ${ready:-?} s and healthy $(seconds_since "$start") s after docker run (health checks every 10 s)"

    http "import sys, httpx
r = httpx.post(f'http://127.0.0.1:{sys.argv[1]}/translate', data={'q': 'the dog runs', 'source': 'xx', 'target': 'yy'})
assert r.status_code == 200 and r.json()['translatedText'].strip(), r.text
print('/translate:', r.json())" || fail "/translate"
    http "import sys, httpx
r = httpx.post(f'http://127.0.0.1:{sys.argv[1]}/v1/translate', json={'text': ['the big dog', 'a cat'], 'model': 'toy', 'alignments': True})
assert r.status_code == 200, r.text
ts = r.json()['translations']
assert len(ts) == 2 and all(t['translation'].strip() and t['alignment'] for t in ts), r.text
print('/v1/translate:', [t['translation'] for t in ts])" || fail "/v1/translate"

    local uid
    uid=$(docker exec "$CONTAINER" id -u)
    [ "$uid" != 0 ] || fail "the server runs as root"
    local users
    users=$(docker top "$CONTAINER" -o pid,user | awk 'NR > 1 { print $2 }' | sort -u)
    [ -n "$users" ] && ! grep -qx root <<<"$users" || fail "a process in the container runs as root: $users"
    report "server process uid $uid; resident memory $(docker stats --no-stream --format '{{.MemUsage}}' "$CONTAINER" | cut -d/ -f1)"

    start=$(date +%s.%N)
    docker stop "$CONTAINER" >/dev/null
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
    [ "$code" = 0 ] || { docker logs "$CONTAINER" >&2; fail "exit code $code after docker stop"; }
    report "docker stop: exit code 0 in $(seconds_since "$start") s"
}

mkdir -p "$WORK"
ensure_engine
ensure_base
fill_build_extra
build_image
if [ "$VARIANT" = cpu ]; then
    smoke_test
    say "passed: $IMAGE builds, turns healthy, translates, runs as non-root and stops cleanly"
else
    say "built $IMAGE (not run: it needs a GPU)"
fi
