"""The soak's workload and its checker (driven by tests/src/soak.rs).

`soak.py run --endpoints E1,E2 --bucket B --mount DIR --seconds N --seed S
--state FILE` runs writers while the harness injects faults: two through S3
(puts of random sizes, multipart puts, overwrites, deletes, reads), each
on a router picked at random, and one through the mount (files written and
fsynced, overwrites, unlinks, directory renames, reads). Every operation is
recorded against a model of what each key may hold: an acknowledged write
leaves exactly its bytes possible, an acknowledged delete only absence; an
operation that failed or timed out adds its outcome to what was possible
before (it may or may not have happened). Reads during the run are checked
against the model too. The model goes to FILE.

`soak.py check --endpoints E --bucket B --state FILE` reads the bucket once
the harness has healed the cluster: every key the model knows must hold
one of its possible values (a lost acknowledged write, a deleted object
that came back, bytes never written are anomalies), and the listing must
show exactly the keys that GET finds. It prints one JSON line of figures,
then OK if nothing was lost and nothing was anomalous.
"""
import argparse
import hashlib
import io
import json
import os
import random
import sys
import threading
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

ABSENT = "absent"
#: One attempt, short timeouts: an operation the fault broke is recorded as
#: failed (its outcome unknown), not retried into success.
CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 1},
    connect_timeout=3,
    read_timeout=30,
)
#: Multipart above 8 MiB, in 5 MiB parts.
MULTIPART = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=5 << 20, use_threads=False)
#: Directories the mount writer uses (it renames among them).
DIRS = 8
FILES = 6


def digest(data):
    return hashlib.sha256(data).hexdigest()


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=CONFIG)


class Model:
    """What each key may hold, and counts of what was done."""

    def __init__(self):
        self.lock = threading.Lock()
        self.possible = {}
        self.ops = {}
        self.anomalies = []

    def count(self, op, acked):
        with self.lock:
            name = f"{op} {'ok' if acked else 'failed'}"
            self.ops[name] = self.ops.get(name, 0) + 1

    def now(self, key):
        return set(self.possible.get(key, {ABSENT}))

    def wrote(self, key, value, acked):
        """`value`: a digest, or ABSENT for a delete."""
        with self.lock:
            if acked:
                self.possible[key] = {value}
            else:
                self.possible[key] = self.now(key) | {value}

    def read(self, key, value, what):
        with self.lock:
            if value not in self.now(key):
                self.anomalies.append(f"{what}: {key} read {value}, possible {sorted(self.now(key))}")


def body(rng, big):
    if big:
        size = rng.randint(9 << 20, 14 << 20)
    else:
        size = rng.choice([0, rng.randint(1, 4096), rng.randint(4096, 1 << 20)])
    return rng.randbytes(size)


def s3_writer(model, endpoints, bucket, writer, seed, until):
    rng = random.Random(seed)
    clients = [client(e) for e in endpoints]
    keys = [f"s3/w{writer}/k{i}" for i in range(12)]
    while time.time() < until:
        s3 = rng.choice(clients)
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.55:
            op = "multipart put" if roll >= 0.45 else "put"
            data = body(rng, op == "multipart put")
            try:
                if op == "put":
                    s3.put_object(Bucket=bucket, Key=key, Body=data)
                else:
                    s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=MULTIPART)
                acked = True
            except Exception:
                acked = False
            model.wrote(key, digest(data), acked)
            model.count(op, acked)
        elif roll < 0.75:
            try:
                s3.delete_object(Bucket=bucket, Key=key)
                acked = True
            except Exception:
                acked = False
            model.wrote(key, ABSENT, acked)
            model.count("delete", acked)
        else:
            try:
                got = digest(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                got = ABSENT
            except Exception:
                model.count("get", False)
                continue
            model.read(key, got, "S3 GET during the run")
            model.count("get", True)


def mount_writer(model, mount, seed, until):
    rng = random.Random(seed)
    root = os.path.join(mount, "fs")
    os.makedirs(root, exist_ok=True)
    # Directories renamed away (fresh names), removed again oldest first.
    moved, renames = [], 0

    def key(d, f):
        return f"fs/{d}/f{f}"

    while time.time() < until:
        d, f = f"d{rng.randrange(DIRS)}", rng.randrange(FILES)
        path = os.path.join(root, d, f"f{f}")
        roll = rng.random()
        if roll < 0.5:
            data = body(rng, rng.random() < 0.05)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                acked = True
            except OSError:
                acked = False
            if not acked:
                # A failed rewrite may have left the file truncated.
                model.wrote(key(d, f), digest(b""), False)
            model.wrote(key(d, f), digest(data), acked)
            model.count("mount write", acked)
        elif roll < 0.65:
            unlink(model, os.path.join(root, d), d, f)
        elif roll < 0.72:
            if all(model.now(key(d, g)) == {ABSENT} for g in range(FILES)):
                continue
            to = f"m{seed}x{renames}"
            renames += 1
            try:
                os.rename(os.path.join(root, d), os.path.join(root, to))
                acked = True
            except OSError:
                acked = False
            with model.lock:
                for g in range(FILES):
                    was = model.now(key(d, g))
                    if acked:
                        model.possible[key(to, g)] = was
                        model.possible[key(d, g)] = {ABSENT}
                    else:
                        model.possible[key(to, g)] = was | {ABSENT}
                        model.possible[key(d, g)] = was | {ABSENT}
            moved.append(to)
            model.count("mount directory rename", acked)
            if len(moved) > 4:
                gone = moved.pop(0)
                for g in range(FILES):
                    unlink(model, os.path.join(root, gone), gone, g)
                try:
                    os.rmdir(os.path.join(root, gone))
                    acked = True
                except FileNotFoundError:
                    acked = True
                except OSError:
                    acked = False
                model.count("mount rmdir", acked)
        else:
            try:
                with open(path, "rb") as src:
                    got = digest(src.read())
            except FileNotFoundError:
                got = ABSENT
            except OSError:
                model.count("mount read", False)
                continue
            model.read(key(d, f), got, "read on the mount during the run")
            model.count("mount read", True)


def unlink(model, directory, d, f):
    """Unlinks file `f` of directory `d` through the mount."""
    key = f"fs/{d}/f{f}"
    try:
        os.unlink(os.path.join(directory, f"f{f}"))
        acked = True
    except FileNotFoundError:
        if ABSENT not in model.now(key):
            model.read(key, ABSENT, "unlink on the mount answered ENOENT")
            return
        acked = True
    except OSError:
        acked = False
    model.wrote(key, ABSENT, acked)
    model.count("mount unlink", acked)


def run(args):
    model = Model()
    until = time.time() + args.seconds
    endpoints = args.endpoints.split(",")
    threads = [
        threading.Thread(target=s3_writer, args=(model, endpoints, args.bucket, w, args.seed * 10 + w, until))
        for w in range(2)
    ]
    threads.append(threading.Thread(target=mount_writer, args=(model, args.mount, args.seed * 10 + 9, until)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = {
        "possible": {k: sorted(v) for k, v in model.possible.items()},
        "ops": model.ops,
        "anomalies": model.anomalies,
    }
    with open(args.state, "w") as out:
        json.dump(state, out)
    print(json.dumps({"ops": model.ops, "anomalies during the run": len(model.anomalies)}))


def check(args):
    with open(args.state) as src:
        state = json.load(src)
    s3 = client(args.endpoints.split(",")[0])
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket):
        listed.update(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    lost, anomalies = [], list(state["anomalies"])
    for key in sorted(set(state["possible"]) | listed):
        possible = set(state["possible"].get(key, [ABSENT]))
        try:
            got = digest(s3.get_object(Bucket=args.bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            got = ABSENT
        if (got != ABSENT) != (key in listed):
            anomalies.append(f"{key}: GET found {got} but the listing {'shows' if key in listed else 'lacks'} it")
        if got in possible:
            continue
        if got == ABSENT:
            lost.append(f"{key}: gone, but an acknowledged write left {sorted(possible)}")
        elif possible == {ABSENT}:
            anomalies.append(f"{key}: deleted (acknowledged) but holds {got}")
        else:
            anomalies.append(f"{key}: holds {got}, never written there; possible {sorted(possible)}")
    acked = sum(n for op, n in state["ops"].items() if op.endswith(" ok"))
    print(
        json.dumps(
            {
                "ops": state["ops"],
                "acknowledged operations": acked,
                "keys checked": len(set(state["possible"]) | listed),
                "acknowledged writes lost": len(lost),
                "anomalies": len(anomalies),
            }
        )
    )
    for line in lost + anomalies:
        print(line)
    if not lost and not anomalies:
        print("OK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "check"])
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--mount")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state", required=True)
    args = parser.parse_args()
    run(args) if args.command == "run" else check(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
