//! The disk cache outlives the mount: the next mount of the bucket rereads
//! cached blocks without a GET, and never serves blocks of an object that
//! has changed since.

use anyhow::Result;
use bucketfs_tests::tools::{random_file, sha256_file};
use bucketfs_tests::Cluster;

#[test]
fn a_remount_rereads_from_the_kept_disk_cache_and_not_stale_blocks() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.aws_ok(&["s3", "mb", "s3://kept"])?;
    let mnt = cluster.dir.join("mnt");
    let options = ["--disk-cache-size", "256"];
    let mount = cluster.mount_with("kept", &mnt, &options)?;
    let (file, other) = (mnt.join("data"), cluster.dir.join("other"));
    random_file(&file, 24 << 20, 1)?;
    drop(mount);
    let mount = cluster.mount_with("kept", &mnt, &options)?;
    let want = sha256_file(&file)?;
    drop(mount);

    // Read back whole from the disk cache: nothing comes from the store.
    let mount = cluster.mount_with("kept", &mnt, &options)?;
    let before = cluster.routers_metric("bucketfs_router_bytes_out_total");
    assert_eq!(sha256_file(&file)?, want);
    let fetched = cluster.routers_metric("bucketfs_router_bytes_out_total") - before;
    println!("reread after a remount fetched {fetched} bytes");
    assert_eq!(fetched, 0, "the kept blocks were fetched again");
    drop(mount);

    // Replaced by another client: the next mount reads the new bytes.
    random_file(&other, 24 << 20, 2)?;
    cluster.s3_cp(&other, "s3://kept/data")?;
    let _mount = cluster.mount_with("kept", &mnt, &options)?;
    let before = cluster.routers_metric("bucketfs_router_bytes_out_total");
    assert_eq!(sha256_file(&file)?, sha256_file(&other)?);
    assert!(
        cluster.routers_metric("bucketfs_router_bytes_out_total") - before >= 24 << 20,
        "the new object was not fetched"
    );
    Ok(())
}
