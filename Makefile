# bucketfs: the two commands are `make up` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
CLUSTER_DIR ?= .cluster
RELEASE_BIN := target/release

.PHONY: deps build install up down test lint bench bench-quick bench-s3 bench-idle bench-amp bench-scale fuzz compose-test soak clean

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --workspace --bins

## Install the release binaries in $(PREFIX)/bin, the mount helper link
## /sbin/mount.fuse.bucketfs (mount -t fuse.bucketfs, fstab) and the system
## user the units in deploy/systemd run as. The units themselves are copied
## by hand: they need settings only the operator knows.
PREFIX ?= /usr/local
install: build
	install -d $(PREFIX)/bin
	install -m 0755 $(RELEASE_BIN)/bucketfs $(RELEASE_BIN)/router $(RELEASE_BIN)/storage-node $(PREFIX)/bin/
	ln -sf $(PREFIX)/bin/bucketfs /sbin/mount.fuse.bucketfs
	getent passwd bucketfs >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin bucketfs

## Start a local cluster (Postgres, ZooKeeper, HAProxy, 2 routers, 3 storage nodes)
## and create the bucket `demo`. Credentials: `source .cluster/env`.
up: build
	$(RELEASE_BIN)/bucketfs-cluster --dir $(CLUSTER_DIR) up --bucket demo
	mkdir -p mnt
	source $(CLUSTER_DIR)/env && BUCKETFS_LOG=$(CLUSTER_DIR)/logs/bucketfs.log $(RELEASE_BIN)/bucketfs mount demo mnt
	@echo "bucket demo mounted at ./mnt"

down:
	@umount -l mnt 2>/dev/null || true
	@if [ -x $(RELEASE_BIN)/bucketfs-cluster ]; then $(RELEASE_BIN)/bucketfs-cluster --dir $(CLUSTER_DIR) down; \
	else $(CARGO) run -q -p bucketfs-tests --bin bucketfs-cluster -- --dir $(CLUSTER_DIR) down; fi

## Unit tests and end-to-end tests against real services. Binaries are built
## once in the dev profile; the end-to-end tests spawn those same binaries.
test: deps
	@command -v pjdfstest >/dev/null || [ -x $$HOME/.cargo/bin/pjdfstest ] || $(CARGO) install pjdfstest
	$(CARGO) build --workspace --bins --tests
	python3 scripts/check-compose.py target/debug
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2

## Builds the image of docker/Dockerfile with podman, starts docker/compose.yaml
## (Postgres, ZooKeeper, HAProxy, 2 routers, 3 nodes, a client mounting a bucket)
## and copies a tree through the mount; not part of `make test`. KEEP=1 leaves it up.
compose-test:
	bash scripts/compose-test.sh

## Fuzz every parser of untrusted input (fuzz/fuzz_targets) for FUZZ_SECONDS
## each (default 300) with cargo fuzz on nightly; not part of `make test`.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := chunk_id chunk_header policy acl listing_token batch request_line peer_auth bucket_settings request_head
fuzz: deps
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || [ -x $$HOME/.cargo/bin/cargo-fuzz ] || $(CARGO) install cargo-fuzz
	@mkdir -p target/fuzz-logs
	@for t in $(FUZZ_TARGETS); do \
		$(CARGO) +nightly fuzz run --fuzz-dir fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			> target/fuzz-logs/$$t.log 2>&1; rc=$$?; \
		grep -E "^stat::number_of_executed_units|^Done|SUMMARY|panicked" target/fuzz-logs/$$t.log | sed "s/^/$$t: /"; \
		[ $$rc -eq 0 ] || { echo "$$t failed: target/fuzz-logs/$$t.log"; exit 1; }; \
	done

## Formatting, clippy, and the layout rules (no file over 900 lines, no
## modules that import each other: scripts/check-layout.py).
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/check-layout.py

## Filesystem benchmark: local dir, bindfs, bucketfs, s3fs, rclone mount, MooseFS side by side
## (bench/results/<date>-<host>-fs.{md,json,png}); then the S3-level benchmark.
bench: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-fs
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-s3

## The same suite with small sizes (a few minutes).
bench-quick: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-fs -- --quick

## A client's GET latency beside 5,000 idle connections and slow clients,
## as ratios to the same client on an idle cluster (not part of `make test`).
bench-idle: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-idle

## Bytes uploaded and disk used per byte changed by small writes (SQLite,
## 4 KiB random writes with fsync, fsx), bucketfs beside s3fs and rclone.
bench-amp: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-amp -- $(ARGS)

## Metadata at scale: 100 thousand and 10 million objects (ARGS= other
## sizes), HEAD/GET/listing latency, ls through a mount, the worker's pass.
bench-scale: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-scale -- $(ARGS)

## S3 throughput benchmark through HAProxy, beside raw disk speed (not part of `make test`).
bench-s3: build
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(CARGO) run --release -p bucketfs-bench --bin bench-s3

## The fault-injection soak on a cluster of network namespaces: writers
## through S3 and a mount while nodes, routers, ZooKeeper and Postgres are
## killed, stopped, cut off, filled and corrupted; then every acknowledged
## write is checked (not part of `make test`, which runs a short one).
DURATION ?= 10m
SEED ?= 1
soak: build
	$(CARGO) build --release -p bucketfs-tests --bin bucketfs-soak
	BUCKETFS_BIN_DIR=$(RELEASE_BIN) $(RELEASE_BIN)/bucketfs-soak --duration $(DURATION) --seed $(SEED)

clean: down
	rm -rf $(CLUSTER_DIR)
