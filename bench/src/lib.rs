//! What the benchmark binaries share: the filesystems they mount
//! (`targets`) and the filesystem benchmark's report (`fs_report`).

pub mod fs_report;
pub mod targets;
