//! HTTPS and who a client is (`tests/scripts/tls.py`): HAProxy ends TLS
//! for the cluster; a router serves HTTPS itself when given a certificate;
//! `aws:SecureTransport` and `aws:SourceIp` believe forwarded headers only
//! from trusted proxies; a router drops a client that does not finish its
//! headers, or sits idle, past its header deadline; the FUSE client
//! mounts over HTTPS with `--ca-file`, and a mount that cannot use its
//! bucket fails at once with the reason.

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
    // A mount that cannot use its bucket fails at once, saying why: an
    // untrusted certificate, no such bucket, refused credentials, nothing
    // listening.
    let refused = |endpoint: &str, bucket: &str, secret: &str| -> Result<String> {
        let dir = cluster.dir.join("mnt-refused");
        std::fs::create_dir_all(&dir)?;
        let started = std::time::Instant::now();
        let out = std::process::Command::new(bucketfs_tests::bin_dir().join("bucketfs"))
            .args(["mount", bucket])
            .arg(&dir)
            .args(["--endpoint", endpoint])
            .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()?;
        let took = started.elapsed();
        anyhow::ensure!(!out.status.success(), "mounted {bucket} at {endpoint}");
        anyhow::ensure!(!bucketfs_tests::is_mounted(&dir), "a mount was left behind");
        anyhow::ensure!(took.as_secs() < 10, "failing took {took:?}");
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (https, http) = (cluster.https_endpoint(), cluster.endpoint());
    let secret = cluster.secret_key.clone();
    let err = refused(&https, "secure", &secret)?;
    assert!(err.contains("--ca-file"), "untrusted certificate: {err}");
    let err = refused(&http, "nosuch", &secret)?;
    assert!(err.contains("there is no bucket nosuch"), "no bucket: {err}");
    let err = refused(&http, "secure", "not-the-secret")?;
    assert!(err.contains("refused these credentials"), "bad secret: {err}");
    let err = refused("http://127.0.0.1:1", "secure", &secret)?;
    assert!(err.contains("cannot reach the store"), "nothing listening: {err}");
    Ok(())
}
