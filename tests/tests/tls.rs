//! HTTPS and who a client is (`tests/scripts/tls.py`): HAProxy ends TLS
//! for the cluster; a router serves HTTPS itself when given a certificate;
//! `aws:SecureTransport` and `aws:SourceIp` believe forwarded headers only
//! from trusted proxies; a router drops a client that does not finish its
//! headers, or sits idle, past its header deadline; the FUSE client
//! mounts over HTTPS with `--ca-file`.

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
    let ca = cluster.tls_ca_path().display().to_string();
    cluster.run_script(
        "tls.py",
        &[
            &cluster.endpoint(),
            &cluster.https_endpoint(),
            &format!("https://127.0.0.1:{port}"),
            &ca,
        ],
    )?;
    // The FUSE client mounts over HTTPS, trusting the cluster's certificate.
    let dir = cluster.dir.join("mnt-https");
    let cert_arg = cluster.tls_ca_path().display().to_string();
    let mount = cluster.mount_at(
        &cluster.https_endpoint(),
        "secure",
        &dir,
        &["--ca-file", &cert_arg],
    )?;
    assert_eq!(std::fs::read(dir.join("k"))?, b"over tls");
    std::fs::write(dir.join("written"), b"through a TLS mount")?;
    drop(mount);
    let back = cluster.aws_ok(&["s3", "cp", "s3://secure/written", "-"])?;
    assert_eq!(back, "through a TLS mount");
    // Without the CA, the server is not trusted: nothing is read (EIO
    // once the client's retries give up).
    let untrusted = cluster.dir.join("mnt-untrusted");
    let _mount = cluster.mount_at(&cluster.https_endpoint(), "secure", &untrusted, &[])?;
    assert!(
        std::fs::read(untrusted.join("k")).is_err(),
        "read over TLS without trusting the server's certificate"
    );
    Ok(())
}
