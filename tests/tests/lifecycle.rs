//! Lifecycle rules applied by the elected worker, with a two-second
//! lifecycle day (`tests/scripts/lifecycle.py`): each rule removes exactly
//! the versions, delete markers and uploads it names, nothing else.

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn rules_remove_exactly_what_they_name() -> Result<()> {
    let cluster =
        Cluster::start_with_router_args(&["--worker-interval-secs", "1", "--lifecycle-day-secs", "2"])?;
    cluster.run_script("lifecycle.py", &[&cluster.endpoint()])?;
    let expired: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_lifecycle_expired_total"))
        .sum();
    assert_eq!(expired, 3, "logs/a, logs/b and tagged/both, once each");
    Ok(())
}
