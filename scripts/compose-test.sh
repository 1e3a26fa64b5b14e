#!/usr/bin/env bash
# `make compose-test`: builds the image of docker/Dockerfile with podman,
# starts docker/compose.yaml with podman-compose, and checks that a bucket
# mounted in the client container holds an exact copy of a tree, also after
# the client restarts (so the bytes came back from the store). Not part of
# `make test`: it builds a release image (minutes) and needs podman.
#
# No image registry is reachable on the machines this runs on, so the base
# image is made from Debian packages (debootstrap), and the builder is that
# base with a C compiler plus this machine's Rust toolchain (the real
# cargo and rustc of its sysroot, read-only: rustup is not involved) and
# crate cache, lent to the build as volumes. Elsewhere, `docker build -f docker/Dockerfile .` uses
# the official rust and debian images.
#
# KEEP=1 leaves the deployment running; S3_PORT (default 19000) is where
# HAProxy is published on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

project=bfscompose
work=$PWD/target/compose-test
s3_port=${S3_PORT:-19000}
mkdir -p "$work"

need=()
for p in podman runc debootstrap podman-compose; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# crun fails on these machines' hybrid cgroups, and podman's default
# ulimits are refused (../shared/testing-notes.md).
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF=$work/containers.conf

step() { echo "== $*"; }

if ! podman image exists localhost/debian-base:bookworm; then
    step "making the Debian base image (debootstrap)"
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$work/rootfs" -c . | podman import - localhost/debian-base:bookworm >/dev/null
    rm -rf "$work/rootfs"
fi
if ! podman image exists localhost/bucketfs-builder:latest; then
    step "making the builder image (the base with a C compiler)"
    podman build -q -t localhost/bucketfs-builder:latest -f - "$work" <<'DOCKERFILE'
FROM localhost/debian-base:bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    gcc libc6-dev make pkg-config ca-certificates && rm -rf /var/lib/apt/lists/*
DOCKERFILE
fi

step "building localhost/bucketfs:latest from docker/Dockerfile"
mkdir -p "$work/target"
started=$(date +%s)
podman build -t localhost/bucketfs:latest -f docker/Dockerfile \
    --build-arg BUILDER=localhost/bucketfs-builder:latest \
    --build-arg RUNTIME=localhost/debian-base:bookworm \
    -v "$(rustc --print sysroot):/usr/local/rust:ro" \
    -v "${CARGO_HOME:-$HOME/.cargo}/registry:/usr/local/cargo/registry" \
    -v "$work/target:/src/target" \
    . > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
echo "built in $(($(date +%s) - started)) s; $(podman image inspect localhost/bucketfs:latest --format '{{.Size}}' | numfmt --to=iec) image"

compose() { BUCKETFS_S3_PORT=$s3_port podman-compose -p "$project" -f docker/compose.yaml "$@"; }
cleanup() {
    if [ -z "${KEEP:-}" ]; then
        compose down -v >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true

step "starting docker/compose.yaml"
compose up -d > "$work/up.log" 2>&1 || { tail -30 "$work/up.log"; exit 1; }
client=${project}_client_1
mounted() { podman exec "$client" grep -q ' /mnt/bucket fuse' /proc/mounts 2>/dev/null; }
for _ in $(seq 180); do mounted && break; sleep 1; done
if ! mounted; then
    podman ps -a --format '{{.Names}} {{.Status}}'
    for c in setup client router1 haproxy; do echo "-- $c"; podman logs --tail 20 "${project}_${c}_1" 2>&1; done
    exit 1
fi
podman ps --format '{{.Names}} {{.Status}}' | sed 's/^/  /'

step "copying a tree into the mounted bucket"
tree=$work/tree
rm -rf "$tree"
mkdir -p "$tree"
cp -a common fuse-client/src docker "$tree/"
head -c 20000000 /dev/urandom > "$tree/random.bin"
files=$(find "$tree" -type f | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
podman cp "$tree" "$client:/tmp/tree"
podman exec "$client" bash -c 'cp -a /tmp/tree /mnt/bucket/tree && diff -r /tmp/tree /mnt/bucket/tree'
echo "  $files files, $bytes bytes: diff -r finds no difference"

step "restarting the client: the copy comes back from the store"
podman restart "$client" >/dev/null
for _ in $(seq 60); do mounted && break; sleep 1; done
podman exec "$client" bash -c 'diff -r /tmp/tree /mnt/bucket/tree && find /mnt/bucket/tree -type f | wc -l' \
    | sed 's/^/  files read back after the restart: /'

step "the same objects through S3 on this machine (HAProxy, port $s3_port)"
creds=$work/credentials
podman exec "$client" cat /run/secrets/bucketfs/credentials > "$creds"
chmod 600 "$creds"
AWS_SHARED_CREDENTIALS_FILE=$creds AWS_DEFAULT_REGION=us-east-1 \
    aws --endpoint-url "http://127.0.0.1:$s3_port" s3 ls --recursive --summarize s3://data/tree/ | tail -2 | sed 's/^/  /'
curl -sf "http://127.0.0.1:$s3_port/_bucketfs/health" >/dev/null && echo "  HAProxy answers health checks"
echo "compose-test: ok"
