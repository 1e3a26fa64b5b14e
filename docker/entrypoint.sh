#!/bin/bash
# The container's entrypoint: `bucketfs-entrypoint ROLE` runs one part of a
# cluster in the foreground, configured by the binaries' own environment
# variables (BUCKETFS_LISTEN, BUCKETFS_ZOOKEEPER... see each `--help`) and
# these few of its own:
#
#   BUCKETFS_SECRETS                 directory of the cluster's generated
#                                    secrets (default /run/secrets/bucketfs)
#   BUCKETFS_DATABASE_PASSWORD_FILE  Postgres password; routers build their
#                                    BUCKETFS_DATABASE_URL from it (and
#                                    BUCKETFS_DATABASE_HOST) unless it is set
#   BUCKETFS_DATABASE_HOST           Postgres host (default postgres)
#   BUCKETFS_ROUTERS                 haproxy: the routers, host:port,...
#   BUCKETFS_BUCKET                  client: the bucket made and mounted
#   BUCKETFS_MOUNTPOINT              client: where (default /mnt/bucket)
#   BUCKETFS_ENDPOINT                setup, client: the S3 endpoint
#
# Roles: secrets, postgres, zookeeper, haproxy, node, router, setup, client;
# anything else runs as a command.
set -euo pipefail

SECRETS=${BUCKETFS_SECRETS:-/run/secrets/bucketfs}
STATE=/var/lib/bucketfs
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

log() { echo "bucketfs-entrypoint: $*" >&2; }

# Waits up to a minute for `$@` to succeed.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 120); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    log "gave up waiting for $what"
    exit 1
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Makes each secret once, in the volume every service mounts.
make_secrets() {
    mkdir -p "$SECRETS"
    umask 077
    [ -s "$SECRETS/cluster-secret" ] || random_hex 32 > "$SECRETS/cluster-secret"
    [ -s "$SECRETS/postgres-password" ] || random_hex 16 > "$SECRETS/postgres-password"
    if [ ! -s "$SECRETS/credentials" ]; then
        printf '[default]\naws_access_key_id = BFS%s\naws_secret_access_key = %s\n' \
            "$(random_hex 8 | tr a-f A-F)" "$(random_hex 20)" > "$SECRETS/credentials.new"
        mv "$SECRETS/credentials.new" "$SECRETS/credentials"
    fi
    # The nodes and routers run as root here; the key files stay 0600.
    log "secrets ready in $SECRETS"
}

credential() { sed -n "s/^$1 *= *//p" "$SECRETS/credentials"; }

database_url() {
    if [ -z "${BUCKETFS_DATABASE_URL:-}" ]; then
        local file=${BUCKETFS_DATABASE_PASSWORD_FILE:-$SECRETS/postgres-password}
        wait_for "$file" test -s "$file"
        export BUCKETFS_DATABASE_URL="postgres://postgres:$(cat "$file")@${BUCKETFS_DATABASE_HOST:-postgres}:5432/postgres"
    fi
}

run_postgres() {
    local data=$STATE/postgres bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    local password=${BUCKETFS_DATABASE_PASSWORD_FILE:-$SECRETS/postgres-password}
    wait_for "$password" test -s "$password"
    mkdir -p "$data" /run/postgresql
    chown postgres: "$data" /run/postgresql
    if [ ! -s "$data/PG_VERSION" ]; then
        install -o postgres -m 0600 "$password" /tmp/pgpass
        runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --pwfile=/tmp/pgpass \
            --auth-local=peer --auth-host=scram-sha-256 >/dev/null
        rm -f /tmp/pgpass
        echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
        echo "host all all ::/0 scram-sha-256" >> "$data/pg_hba.conf"
    fi
    exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*' -c max_connections=200
}

run_zookeeper() {
    local data=$STATE/zookeeper
    mkdir -p "$data"
    cat > "$data/zoo.cfg" <<CFG
dataDir=$data
clientPort=2181
tickTime=2000
admin.enableServer=false
4lw.commands.whitelist=ruok
CFG
    exec java -Xmx256m -cp '/usr/share/java/*' org.apache.zookeeper.server.ZooKeeperServerMain "$data/zoo.cfg"
}

run_haproxy() {
    local servers="" i=0
    IFS=, read -ra routers <<< "${BUCKETFS_ROUTERS:?BUCKETFS_ROUTERS lists the routers, host:port,...}"
    for r in "${routers[@]}"; do
        i=$((i + 1))
        servers+="  server router$i $r check resolvers dns init-addr last,libc,none"$'\n'
    done
    cat > /tmp/haproxy.cfg <<CFG
global
  maxconn 4096
resolvers dns
  parse-resolv-conf
  hold valid 5s
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 600s
  timeout http-request 10s
  timeout http-keep-alive 30s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout
frontend s3
  bind :9000
  option forwardfor
  default_backend routers
backend routers
  balance roundrobin
  option httpchk GET /_bucketfs/health
  default-server inter 1s fall 2 rise 1
$servers
CFG
    exec haproxy -W -db -f /tmp/haproxy.cfg
}

run_node() {
    wait_for "the cluster secret" test -s "$SECRETS/cluster-secret"
    export BUCKETFS_CLUSTER_SECRET_FILE=${BUCKETFS_CLUSTER_SECRET_FILE:-$SECRETS/cluster-secret}
    mkdir -p "${BUCKETFS_DATA_DIR:?}"
    exec storage-node
}

run_router() {
    wait_for "the cluster secret" test -s "$SECRETS/cluster-secret"
    export BUCKETFS_CLUSTER_SECRET_FILE=${BUCKETFS_CLUSTER_SECRET_FILE:-$SECRETS/cluster-secret}
    database_url
    exec router serve
}

# Gives the admin user the key in the credentials file (once).
run_setup() {
    wait_for "the credentials" test -s "$SECRETS/credentials"
    database_url
    local key
    key=$(credential aws_access_key_id)
    wait_for "Postgres" router key list
    if router key list | grep -q "$key"; then
        log "the admin key exists"
    else
        router key create --user admin --access-key "$key" --secret-key "$(credential aws_secret_access_key)" >/dev/null
        log "made the admin key $key"
    fi
}

run_client() {
    local endpoint=${BUCKETFS_ENDPOINT:-http://haproxy:9000} bucket=${BUCKETFS_BUCKET:?}
    local mnt=${BUCKETFS_MOUNTPOINT:-/mnt/bucket} status
    wait_for "the credentials" test -s "$SECRETS/credentials"
    wait_for "the S3 endpoint" curl -sf "$endpoint/_bucketfs/health"
    # The admin key may still be on its way in: retry the bucket's creation.
    for _ in $(seq 60); do
        status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$endpoint/$bucket" \
            -H "x-amz-content-sha256: $EMPTY_SHA256" --aws-sigv4 "aws:amz:us-east-1:s3" \
            --user "$(credential aws_access_key_id):$(credential aws_secret_access_key)") || true
        case $status in 200 | 409) break ;; esac
        sleep 1
    done
    case $status in 200 | 409) ;; *) log "could not make bucket $bucket (HTTP $status)"; exit 1 ;; esac
    mkdir -p "$mnt"
    export AWS_ENDPOINT_URL=$endpoint
    exec bucketfs mount "$bucket" "$mnt" --foreground --allow-other \
        --credentials-file "$SECRETS/credentials" "$@"
}

role=${1:-help}
shift || true
case $role in
    secrets) make_secrets ;;
    postgres) run_postgres ;;
    zookeeper) run_zookeeper ;;
    haproxy) run_haproxy ;;
    node) run_node ;;
    router) run_router ;;
    setup) run_setup ;;
    client) run_client "$@" ;;
    help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
    *) exec "$role" "$@" ;;
esac
