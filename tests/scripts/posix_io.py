"""O_DIRECT, writable shared mmap, fallocate and sparse files on a mount.

`posix_io.py write DIR` makes the files and checks them on the spot;
`posix_io.py check DIR` checks them again (after a remount, say).
"""

import ctypes
import mmap
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10
BLOCK = 4096


def fallocate(fd, mode, offset, length):
    if libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"fallocate mode {mode:#x}: {os.strerror(e)}")


def pattern(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


def expected():
    """What each file must hold."""
    direct = pattern(3 * BLOCK, 1)
    mapped = bytearray(pattern(256 * 1024, 2))
    mapped[5000:5011] = b"via mmap..."
    mapped[200000:200005] = b"again"
    falloc = bytearray(pattern(100_000, 3))
    falloc[4096:12288] = bytes(8192)  # punched
    falloc[50_000:60_000] = bytes(10_000)  # zeroed
    falloc += bytes(150_000 - len(falloc))  # extended by posix_fallocate
    sparse = bytes(1 << 20) + b"tail"
    return {
        "direct": bytes(direct),
        "mapped": bytes(mapped),
        "falloc": bytes(falloc),
        "sparse": sparse,
    }


def write(d):
    want = expected()
    # O_DIRECT: aligned buffers in, the same bytes back.
    fd = os.open(f"{d}/direct", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, len(want["direct"]))
    buf.write(want["direct"])
    assert os.write(fd, buf) == len(want["direct"])
    back = mmap.mmap(-1, len(want["direct"]))
    os.lseek(fd, 0, os.SEEK_SET)
    assert os.readv(fd, [back]) == len(want["direct"])
    assert back[:] == want["direct"], "O_DIRECT read differs"
    os.close(fd)

    # A writable shared mapping: stores land in the file.
    with open(f"{d}/mapped", "wb") as f:
        f.write(pattern(256 * 1024, 2))
    fd = os.open(f"{d}/mapped", os.O_RDWR)
    m = mmap.mmap(fd, 256 * 1024, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[5000:5011] = b"via mmap..."
    m.flush()
    m[200000:200005] = b"again"
    m.close()
    os.close(fd)

    # fallocate: keep-size changes nothing, punch and zero write zeros; a
    # mode that would grow the file is refused, and glibc's posix_fallocate
    # then writes the zeros itself.
    with open(f"{d}/falloc", "wb") as f:
        f.write(pattern(100_000, 3))
    fd = os.open(f"{d}/falloc", os.O_RDWR)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 90_000, 1 << 20)
    assert os.fstat(fd).st_size == 100_000
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
    fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 50_000, 10_000)
    fallocate(fd, 0, 0, 100_000)
    try:
        fallocate(fd, 0, 0, 150_000)
        raise AssertionError("fallocate grew the file")
    except OSError as e:
        assert e.errno == 95, e
    assert os.fstat(fd).st_size == 100_000, os.fstat(fd).st_size
    os.posix_fallocate(fd, 0, 150_000)
    assert os.fstat(fd).st_size == 150_000, os.fstat(fd).st_size
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10)
        raise AssertionError("a punch without keep-size succeeded")
    except OSError as e:
        assert e.errno in (22, 95), e
    os.close(fd)

    # A sparse file: the hole reads as zeros; data is everywhere up to EOF.
    fd = os.open(f"{d}/sparse", os.O_CREAT | os.O_RDWR, 0o644)
    os.lseek(fd, 1 << 20, os.SEEK_SET)
    os.write(fd, b"tail")
    assert os.lseek(fd, 0, os.SEEK_DATA) == 0
    assert os.lseek(fd, 0, os.SEEK_HOLE) == (1 << 20) + 4
    os.close(fd)
    check(d)


def check(d):
    for name, data in expected().items():
        with open(f"{d}/{name}", "rb") as f:
            got = f.read()
        assert got == data, f"{name}: {len(got)} bytes differ from the {len(data)} expected"


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
    print("OK")
