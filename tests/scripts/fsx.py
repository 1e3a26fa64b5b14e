#!/usr/bin/env python3
"""A small fsx-like exerciser: random writes, truncates, reads and reopens of
one file, checked after every read against a model kept in memory.

usage: fsx.py FILE OPS SEED [--verify-only MODEL]
Writes the final model to FILE.model (outside the mount when FILE is inside
it, see --model) so a later run with --verify-only can check the file again,
for instance after an unmount and a remount.
"""
import argparse
import os
import random
import sys

MAX_LEN = 24 << 20  # spans three 8 MiB parts


def check(fd, model, offset, length):
    os.lseek(fd, offset, os.SEEK_SET)
    got = b""
    while len(got) < length:
        chunk = os.read(fd, length - len(got))
        if not chunk:
            break
        got += chunk
    want = bytes(model[offset:offset + length])
    if got != want:
        for i, (a, b) in enumerate(zip(got, want)):
            if a != b:
                sys.exit(f"MISMATCH at {offset + i}: got {a} want {b} (read {len(got)} of {len(want)})")
        sys.exit(f"MISMATCH: short read at {offset}: {len(got)} of {len(want)}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("ops", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("--model", required=True)
    p.add_argument("--verify-only", action="store_true")
    a = p.parse_args()

    if a.verify_only:
        model = bytearray(open(a.model, "rb").read())
        if os.path.getsize(a.file) != len(model):
            sys.exit(f"MISMATCH: size {os.path.getsize(a.file)} want {len(model)}")
        fd = os.open(a.file, os.O_RDONLY)
        check(fd, model, 0, len(model))
        print(f"verified {len(model)} bytes")
        return

    rng = random.Random(a.seed)
    model = bytearray()
    fd = os.open(a.file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    counts = {}
    written = 0
    for _ in range(a.ops):
        op = rng.choice(["write", "write", "write", "read", "read", "truncate", "reopen", "fsync"])
        counts[op] = counts.get(op, 0) + 1
        if op == "write":
            offset = rng.randrange(0, MAX_LEN - 1)
            length = rng.choice([1, 100, 4096, 65536, 300000, 2 << 20])
            length = min(length, MAX_LEN - offset)
            data = rng.randbytes(length)
            os.pwrite(fd, data, offset)
            written += length
            if offset > len(model):
                model.extend(bytes(offset - len(model)))
            model[offset:offset + length] = data
        elif op == "read" and model:
            offset = rng.randrange(0, len(model))
            check(fd, model, offset, min(rng.choice([1, 4096, 1 << 20, 9 << 20]), len(model) - offset))
        elif op == "truncate":
            size = rng.randrange(0, MAX_LEN)
            os.ftruncate(fd, size)
            if size < len(model):
                del model[size:]
            else:
                model.extend(bytes(size - len(model)))
        elif op == "reopen":
            os.close(fd)
            fd = os.open(a.file, os.O_RDWR)
        elif op == "fsync":
            os.fsync(fd)
    os.close(fd)
    fd = os.open(a.file, os.O_RDONLY)
    check(fd, model, 0, len(model))
    open(a.model, "wb").write(model)
    print(f"{a.ops} ops {sorted(counts.items())}, final size {len(model)}, wrote {written}: no mismatch")


if __name__ == "__main__":
    main()
