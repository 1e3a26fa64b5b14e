#!/usr/bin/env python3
"""A database on the mount: makes a SQLite database of about SIZE_MIB
(rows of 4000 random bytes), or runs TXNS transactions on it, each
rewriting one random row with the default journal (rollback, fsync on
commit). Prints `wrote N` (the bytes this process passed to write calls,
from /proc/self/io: database and journal pages) and the seconds taken.

usage: sqlite_txn.py create DB SIZE_MIB | run DB TXNS
"""
import os
import random
import sqlite3
import sys
import time


def wchar():
    with open("/proc/self/io") as f:
        return int(next(l for l in f if l.startswith("wchar")).split()[1])


mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)
start_bytes, started = wchar(), time.monotonic()
db = sqlite3.connect(path, isolation_level=None)
if mode == "create":
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    rows = n * 1024 * 1024 // 4096
    db.execute("BEGIN")
    for i in range(rows):
        db.execute("INSERT INTO t VALUES (?, ?)", (i, rng.randbytes(4000)))
    db.execute("COMMIT")
else:
    rows = db.execute("SELECT count(*) FROM t").fetchone()[0]
    for _ in range(n):
        db.execute("BEGIN")
        db.execute("UPDATE t SET v = ? WHERE id = ?", (rng.randbytes(4000), rng.randrange(rows)))
        db.execute("COMMIT")
db.close()
print(f"wrote {wchar() - start_bytes} secs {time.monotonic() - started:.2f}")
