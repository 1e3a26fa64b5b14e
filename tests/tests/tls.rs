//! HTTPS and who a client is (`tests/scripts/tls.py`): HAProxy ends TLS
//! for the cluster; a router serves HTTPS itself when given a certificate;
//! `aws:SecureTransport` and `aws:SourceIp` believe forwarded headers only
//! from trusted proxies; a router drops a client that does not finish its
//! headers, or sits idle, past its header deadline.

use std::process::Command;

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn https_serves_s3_and_forwarded_headers_are_believed_only_from_proxies() -> Result<()> {
    let mut cluster = Cluster::start()?;
    let cert = cluster.tls_cert_path().display().to_string();
    let key = cluster.tls_key_path().display().to_string();
    // This router trusts no proxy on loopback: the test's own forwarded
    // headers must be ignored.
    let port = cluster.start_extra_router(
        "router-tls",
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--trusted-proxy",
            "198.18.0.1",
            "--header-timeout-secs",
            "2",
        ],
    )?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tls.py");
    let out = Command::new("python3")
        .args([script, &cluster.endpoint(), &cluster.https_endpoint()])
        .arg(format!("https://127.0.0.1:{port}"))
        .arg(&cert)
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "tls.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
