#!/usr/bin/env bash
# Installs the Debian packages bucketfs needs to build, run and test, if any
# are missing. Safe to run repeatedly; runs apt-get only when something is absent.
set -euo pipefail

packages=(
  postgresql          # metadata store (initdb/postgres run as the postgres user)
  zookeeper           # membership and coordination
  haproxy             # load balancer in front of the routers
  netcat-openbsd
  fuse3 libfuse3-dev pkg-config   # the FUSE client
  awscli s3cmd rclone python3-boto3 python3-requests   # real S3 clients used by the tests
  openssl             # the local cluster's self-signed HTTPS certificate
  fio                 # benchmarks and integrity checks
  attr rsync sqlite3 gcc make git   # unmodified tools the mount tests run
  libacl1-dev         # links pjdfstest
  bindfs s3fs gnuplot-nox   # benchmark peers and charts (make bench)
  moosefs-master moosefs-chunkserver moosefs-client   # benchmark peer (bench/moosefs.sh)
  iproute2 util-linux   # ip netns, nsenter and ss (MooseFS, the several-hosts test); mount -T for fstab tests
  curl                # raw HTTP requests in tests (status lines, request ids)
  python3-yaml        # scripts/check-compose.py reads docker/compose.yaml
  systemd             # systemd-analyze verify of the units in deploy/systemd
  chromium            # the status page, loaded headless by a test
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Users pjdfstest switches to.
getent group nogroup >/dev/null || groupadd nogroup
getent passwd nobody >/dev/null || useradd -M -g nogroup -s /usr/sbin/nologin nobody
getent passwd tests >/dev/null || useradd -M -U -s /usr/sbin/nologin tests

# Debian's postgresql package starts a cluster on 5432; we run our own.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  pg_ctlcluster --force 15 main stop 2>/dev/null || true
fi
