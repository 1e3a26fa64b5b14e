//! How the processes ask glibc's allocator to keep freed memory.
//!
//! Every chunk, part and FUSE write passes through fresh megabyte buffers.
//! By default glibc returns such buffers to the kernel when they are freed
//! (large ones are mmapped, and heap tops are trimmed), so the next buffer
//! starts on pages the kernel must fault in and zero again; on virtual
//! machines whose freed pages go back to the host, a first touch costs a
//! host fault too. Measured on the bench machine: a 1 GiB sequential write
//! through the mount cost the daemon 4.6-4.8 s of CPU before, 2.7-3.3 s with
//! freed memory kept, and took 9.5-10.2 s instead of 11.2-11.4 s.

/// Largest allocation served from the heap rather than its own mapping:
/// above a chunk (8 MiB) and a FUSE write (1 MiB) with room to spare.
const MMAP_THRESHOLD: i32 = 64 << 20;
/// Free memory at a heap's top kept rather than given back.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Keeps freed buffers in the process for reuse. Call first thing in `main`.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // the process does any work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
