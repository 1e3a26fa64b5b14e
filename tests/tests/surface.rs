//! The everyday S3 surface as clients use it (`tests/scripts/surface.py`,
//! boto3 and requests): object and bucket tagging, settings given to a
//! multipart upload, partNumber, GetObjectAttributes parts, CORS and
//! browser POST uploads.

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn tagging_parts_cors_and_browser_uploads_work_as_in_s3() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.run_script("surface.py", &[&cluster.endpoint()])?;
    Ok(())
}
