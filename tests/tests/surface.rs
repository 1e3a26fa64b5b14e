//! The everyday S3 surface as clients use it (`tests/scripts/surface.py`,
//! boto3 and requests): object and bucket tagging, settings given to a
//! multipart upload, partNumber, GetObjectAttributes parts, CORS and
//! browser POST uploads.

use std::process::Command;

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn tagging_parts_cors_and_browser_uploads_work_as_in_s3() -> Result<()> {
    let cluster = Cluster::start()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/surface.py");
    let out = Command::new("python3")
        .args([script, &cluster.endpoint()])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "surface.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
