#!/usr/bin/env bash
# Build and run acsprov's container image with podman or docker, whichever can run.
#
#   container/engine.sh check                 print the engine that works, or explain
#   container/engine.sh build                 build $IMAGE from Containerfile
#   container/engine.sh run CMD...            run CMD in $IMAGE with $DATA_DIR on /data
#   container/engine.sh inspect               print "digest id" of $IMAGE
#
# Settings come from the environment (the Makefile passes them): IMAGE, BASE_IMAGE,
# HSTCAL, MICROMAMBA_IMAGE, CRDS_CONTEXT, CRDS_BAKE, DATA_DIR, CONTAINER_ENGINE (force one),
# PODMAN_BUILD_FLAGS, PODMAN_RUN_FLAGS, CONTAINER_NETWORK, CONTAINER_USER, PIP_INDEX_URL,
# CA_BUNDLE.
set -euo pipefail

IMAGE=${IMAGE:-localhost/acsprov:latest}

# An engine "can run" when its daemon or runtime answers `info`, not merely when
# its command exists (a docker client without a daemon cannot build anything).
usable() {
    command -v "$1" >/dev/null 2>&1 && timeout 60 "$1" info >/dev/null 2>&1
}

engine() {
    local candidates=(podman docker)
    if [ -n "${CONTAINER_ENGINE:-}" ]; then
        candidates=("$CONTAINER_ENGINE")
    fi
    local e
    for e in "${candidates[@]}"; do
        if usable "$e"; then
            echo "$e"
            return 0
        fi
    done
    cat >&2 <<EOF
No container engine can run here (tried: ${candidates[*]}): the image was NOT built.
  - Install podman (Debian/Ubuntu: apt-get install podman buildah runc) or Docker
    and make sure '$(printf '%s' "${candidates[0]}") info' succeeds (Docker: start the daemon),
    then run 'make container' again.
  - Without an image, 'make reprocess DATASET=...' runs the same recipe with
    acsprov's native engine in .venv.
EOF
    return 1
}

# The CA bundle pip and crds use on this machine, handed to the build as a secret.
ca_bundle() {
    local candidate
    for candidate in "${CA_BUNDLE:-}" "${PIP_CERT:-}" \
        "$(python3 -m pip config get global.cert 2>/dev/null || true)" \
        "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$candidate" ] && [ -s "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
}

# PyPI as pip reaches it on this machine (empty: pypi.org itself).
index_url() {
    if [ -n "${PIP_INDEX_URL:-}" ]; then
        echo "$PIP_INDEX_URL"
    else
        python3 -m pip config get global.index-url 2>/dev/null || true
    fi
}

build() {
    local e
    e=$(engine)
    local args=(build -f Containerfile -t "$IMAGE"
        --build-arg "IMAGE_NAME=$IMAGE"
        --build-arg "HSTCAL=${HSTCAL:-none}"
        --build-arg "CRDS_BAKE=${CRDS_BAKE:-none}"
        --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
    [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
    [ -n "${CRDS_CONTEXT:-}" ] && args+=(--build-arg "CRDS_CONTEXT=$CRDS_CONTEXT")
    [ -n "${MICROMAMBA_IMAGE:-}" ] && args+=(--build-arg "MICROMAMBA_IMAGE=$MICROMAMBA_IMAGE")
    local url ca
    url=$(index_url)
    [ -n "$url" ] && args+=(--build-arg "PIP_INDEX_URL=$url")
    ca=$(ca_bundle)
    [ -n "$ca" ] && args+=(--secret "id=cacert,src=$ca")
    if [ "$e" = podman ]; then
        # shellcheck disable=SC2206  # word splitting of the flags is wanted
        args+=(${PODMAN_BUILD_FLAGS---isolation chroot})
    else
        export DOCKER_BUILDKIT=1
    fi
    echo "+ $e ${args[*]} ." >&2
    "$e" "${args[@]}" .
    echo "built $IMAGE with $e ($(image_size "$e"))" >&2
}

image_size() {
    "$1" image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null \
        | awk '{ printf "%.0f MB", $1 / 1e6 }'
}

inspect() {
    local e digest id
    e=$(engine)
    id=$("$e" image inspect --format '{{.Id}}' "$IMAGE")
    if [ "$e" = podman ]; then
        digest=$("$e" image inspect --format '{{.Digest}}' "$IMAGE")
    else
        digest=$("$e" image inspect --format '{{if .RepoDigests}}{{index .RepoDigests 0}}{{end}}' "$IMAGE")
    fi
    echo "${digest:-none} $id"
}

run() {
    local e
    e=$(engine)
    local data=${DATA_DIR:?DATA_DIR: the host directory to mount on /data}
    mkdir -p "$data"
    if ! "$e" image inspect "$IMAGE" >/dev/null 2>&1; then
        echo "No image $IMAGE here: build it first with 'make container IMAGE=$IMAGE'" >&2
        return 1
    fi
    local digest id
    read -r digest id < <(IMAGE=$IMAGE inspect)
    local args=(run --rm -v "$(cd "$data" && pwd):/data" -w /data
        --network "${CONTAINER_NETWORK:-host}"
        -e "ACSPROV_IMAGE_DIGEST=$digest" -e "ACSPROV_IMAGE_ID=$id"
        -e "ACSPROV_CRDS_PATH=/data/crds_cache")
    # Products belong to whoever runs make: their uid inside (rootless podman: keep-id).
    # CONTAINER_USER=image keeps the image's own non-root user instead.
    if [ "${CONTAINER_USER:-}" != image ]; then
        if [ "$e" = podman ] && [ "$(podman info --format '{{.Host.Security.Rootless}}')" = true ]; then
            args+=(--userns keep-id)
        fi
        args+=(--user "${CONTAINER_USER:-$(id -u):$(id -g)}")
    fi
    local var
    for var in ACSPROV_OFFLINE ACSPROV_ENGINE ACSPROV_MAST_URL ACSPROV_CRDS_SYNC; do
        [ -n "${!var:-}" ] && args+=(-e "$var=${!var}")
    done
    if [ "$e" = podman ]; then
        # shellcheck disable=SC2206
        args+=(${PODMAN_RUN_FLAGS---runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024})
    fi
    echo "+ $e ${args[*]} $IMAGE $*" >&2
    "$e" "${args[@]}" "$IMAGE" "$@"
}

case "${1:-}" in
    check) engine ;;
    build) build ;;
    inspect) inspect ;;
    run) shift; run "$@" ;;
    *) echo "usage: container/engine.sh check|build|inspect|run CMD..." >&2; exit 2 ;;
esac
