"""Lock helpers run as separate processes by tests/tests/locks.rs (a POSIX
lock belongs to a process, so each side of a contention is its own).

  locks.py hold PATH SECONDS fcntl|flock   lock, print "locked", hold, unlock, print "released"
  locks.py try PATH fcntl|flock            a non-blocking exclusive lock: print "got" or "busy"
  locks.py wait PATH fcntl|flock           a blocking exclusive lock: print "got"
  locks.py getlk PATH                      F_GETLK for a write lock of the whole file: "none" or "write PID"
  locks.py ranges PATH                     byte ranges: read locks share, write locks exclude, per range
  locks.py sqlite-init DB                  a database with a counter at 0
  locks.py sqlite DB N                     N transactions each adding 1 to the counter
  locks.py sqlite-check DB                 print the counter and PRAGMA integrity_check
"""

import errno
import fcntl
import os
import sqlite3
import struct
import sys
import time


def lock(fd, how, blocking):
    flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
    if how == "flock":
        fcntl.flock(fd, flags)
    else:
        fcntl.lockf(fd, flags)


def unlock(fd, how):
    if how == "flock":
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)


def say(text):
    print(text, flush=True)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "sqlite-init":
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE counter (n INTEGER)")
        db.execute("INSERT INTO counter VALUES (0)")
        db.close()
        say("OK")
        return
    if mode == "sqlite-check":
        db = sqlite3.connect(path, isolation_level=None)
        (n,) = db.execute("SELECT n FROM counter").fetchone()
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        say(f"{n} {check}")
        return
    if mode == "sqlite":
        db = sqlite3.connect(path, timeout=120, isolation_level=None)
        for _ in range(int(sys.argv[3])):
            try:
                db.execute("BEGIN IMMEDIATE")
                (n,) = db.execute("SELECT n FROM counter").fetchone()
                db.execute("UPDATE counter SET n = ?", (n + 1,))
                db.execute("COMMIT")
            except sqlite3.Error as e:
                raise SystemExit(f"{e} ({getattr(e, 'sqlite_errorname', '?')})")
        db.close()
        say("OK")
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if mode == "hold":
        seconds, how = float(sys.argv[3]), sys.argv[4]
        lock(fd, how, True)
        say("locked")
        time.sleep(seconds)
        unlock(fd, how)
        say("released")
    elif mode == "try":
        try:
            lock(fd, sys.argv[3], False)
            say("got")
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            say("busy")
    elif mode == "wait":
        lock(fd, sys.argv[3], True)
        say("got")
    elif mode == "getlk":
        # struct flock: short type, short whence, off_t start, off_t len, pid_t pid
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, query))
        say("none" if kind == fcntl.F_UNLCK else f"{'write' if kind == fcntl.F_WRLCK else 'read'} {pid}")
    elif mode == "ranges":
        # Read locks of one range share; a write lock of another range is free.
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 100, 0)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 200)
        say("OK")
    else:
        raise SystemExit(f"unknown mode {mode}")


main()
