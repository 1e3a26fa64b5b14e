//! A short seeded soak (see `bucketfs_tests::soak`): writers through S3 and
//! a mount while faults are injected one at a time; nothing acknowledged is
//! lost, nothing anomalous is read, every chunk is back at 3 replicas and
//! the disks hold only referenced chunks. `make soak` runs a long one.

use anyhow::Result;
use bucketfs_tests::soak;

#[test]
fn a_short_seeded_soak_loses_nothing() -> Result<()> {
    let seed = std::env::var("BUCKETFS_SOAK_SEED").map_or(Ok(7), |s| s.parse())?;
    let report = soak::run(70, seed, |line| eprintln!("soak: {line}"))?;
    eprint!("{report}");
    assert!(report.ok(), "{report}");
    assert!(
        report.faults.len() >= 5,
        "too few kinds of fault injected: {report}"
    );
    let acked = report.checked["acknowledged operations"].as_u64().unwrap_or(0);
    assert!(acked >= 100, "the workload did too little: {report}");
    Ok(())
}
