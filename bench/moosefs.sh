#!/bin/bash
# MooseFS for the benchmark: one master and three chunkservers (goal 3,
# trash time 0), all on this machine, mounted at MOUNTPOINT.
#
#   bench/moosefs.sh start WORKDIR        master and chunkservers
#   bench/moosefs.sh mount WORKDIR MOUNTPOINT
#   bench/moosefs.sh stop WORKDIR         unmount first
#
# MooseFS 3.0.117 refuses 127.0.0.0/8 between chunkserver and master, so it
# runs in a network namespace of its own with an address from the
# benchmarking range (198.18.0.0/15) on that namespace's loopback. Every
# process joins it with `nsenter --net` only, so the mount lives in our mount
# namespace and is visible outside. Settings are MooseFS's defaults
# otherwise (chunkservers do not fsync: HDD_FSYNC_BEFORE_CLOSE = 0).
set -euo pipefail

cmd=$1 work=$2 mnt=${3:-}
ns=bucketfs-bench-mfs
ip=198.18.0.1
in_ns() { nsenter --net=/run/netns/$ns "$@"; }

start() {
    ip netns add $ns 2>/dev/null || true
    in_ns ip link set lo up
    in_ns ip addr add $ip/32 dev lo 2>/dev/null || true
    mkdir -p "$work/master"
    cp /var/lib/mfs/metadata.mfs.empty "$work/master/metadata.mfs"
    echo "* / rw,alldirs,admin,maproot=0:0" > "$work/exports.cfg"
    : > "$work/topology.cfg"
    cat > "$work/master.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $work/master
EXPORTS_FILENAME = $work/exports.cfg
TOPOLOGY_FILENAME = $work/topology.cfg
MATOML_LISTEN_HOST = $ip
MATOCS_LISTEN_HOST = $ip
MATOCL_LISTEN_HOST = $ip
EOF
    in_ns mfsmaster -c "$work/master.cfg" start > "$work/master.log" 2>&1
    for i in 1 2 3; do
        local d=$work/cs$i
        mkdir -p "$d/data"
        echo "$d/data" > "$d/hdd.cfg"
        cat > "$d/chunkserver.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $d
HDD_CONF_FILENAME = $d/hdd.cfg
HDD_LEAVE_SPACE_DEFAULT = 1GiB
BIND_HOST = $ip
MASTER_HOST = $ip
CSSERV_LISTEN_HOST = $ip
CSSERV_LISTEN_PORT = $((9412 + 10 * i))
EOF
        in_ns mfschunkserver -c "$d/chunkserver.cfg" start > "$d/chunkserver.log" 2>&1
    done
    # Three chunkservers connected to the master's port 9420.
    for _ in $(seq 100); do
        [ "$(in_ns ss -Htn state established "( sport = :9420 )" | wc -l)" -ge 3 ] && break
        sleep 0.2
    done
}

mount_it() {
    mkdir -p "$mnt"
    in_ns mfsmount "$mnt" -H $ip > "$work/mount.log" 2>&1
    # The tools talk to the master too: from inside the namespace.
    in_ns mfssetgoal -r 3 "$mnt" > /dev/null
    in_ns mfssettrashtime -r 0 "$mnt" > /dev/null
}

stop() {
    for i in 1 2 3; do
        [ -f "$work/cs$i/chunkserver.cfg" ] && in_ns mfschunkserver -c "$work/cs$i/chunkserver.cfg" stop > /dev/null 2>&1 || true
    done
    [ -f "$work/master.cfg" ] && in_ns mfsmaster -c "$work/master.cfg" stop > /dev/null 2>&1 || true
    ip netns del $ns 2>/dev/null || true
}

case $cmd in
    start) start ;;
    mount) mount_it ;;
    stop) stop ;;
    *) echo "usage: $0 start|mount|stop WORKDIR [MOUNTPOINT]" >&2; exit 2 ;;
esac
