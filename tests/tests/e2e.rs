//! The end-to-end tests, one module per capability, in one test binary so
//! that libtest runs them two at a time across the whole suite (separate
//! binaries ran one after another, mostly waiting on the cluster) and the
//! harness is linked once. Each test starts its own cluster on free ports.
//! One module: `cargo test -p bucketfs-tests --test e2e MODULE::`. libtest
//! starts tests in name order: the longest, pjdfstest, is in `conformance`
//! so that it starts among the first rather than last.

mod access;
mod background;
mod change_feed;
mod collection;
mod conformance;
mod copies;
mod crash_safety;
mod disk_cache;
mod extensions;
mod failures;
mod hard_links;
mod healing;
mod hostile;
mod hosts;
mod lifecycle;
mod locks;
mod meta;
mod mount;
mod mount_scale;
mod mount_tools;
mod object_lock;
mod observability;
mod patches;
mod peer_auth;
mod posix_io;
mod s3_clients;
mod semantics;
mod soak;
mod special_files;
mod surface;
mod time_travel;
mod tls;
mod unix_mount;
