//! The rename extension the FUSE client uses for atomic, metadata-only rename.

use std::fs;
use std::process::Command;

use anyhow::Result;
use bucketfs_tests::Cluster;

fn rename(cluster: &Cluster, from: &str, to: &str, flags: &[&str]) -> Result<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rename.py");
    let out = Command::new("python3")
        .arg(script)
        .args([cluster.endpoint().as_str(), "ren", from, to])
        .args(flags)
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn keys(cluster: &Cluster) -> Result<Vec<String>> {
    let out = cluster.aws_ok(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "ren",
        "--query",
        "Contents[].Key",
        "--output",
        "json",
    ])?;
    let mut keys: Vec<String> = serde_json::from_str(&out).unwrap_or_default();
    keys.sort();
    Ok(keys)
}

fn node_bytes_written(cluster: &Cluster) -> u64 {
    (1..=3)
        .filter_map(|i| cluster.node_metric(i, "bucketfs_node_bytes_written_total"))
        .sum()
}

#[test]
fn files_and_directories_rename_atomically_by_reference() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    cluster.aws_ok(&["s3", "mb", "s3://ren"])?;
    for (key, body) in [
        ("dir/a", "A"),
        ("dir/b", "B"),
        ("dir/sub/c", "C"),
        ("file", "F"),
        ("other", "O"),
    ] {
        let path = work.join("body");
        fs::write(&path, body)?;
        cluster.aws_ok(&[
            "s3api",
            "put-object",
            "--bucket",
            "ren",
            "--key",
            key,
            "--body",
            path.to_str().unwrap(),
        ])?;
    }
    let written = node_bytes_written(&cluster);

    assert_eq!(
        rename(&cluster, "file", "renamed file", &[])?,
        "200 {\"renamed\":1}"
    );
    assert_eq!(
        rename(&cluster, "dir/", "moved/", &["--prefix"])?,
        "200 {\"renamed\":3}"
    );
    assert_eq!(
        keys(&cluster)?,
        ["moved/a", "moved/b", "moved/sub/c", "other", "renamed file"].map(String::from)
    );
    let got = work.join("got");
    cluster.aws_ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "ren",
        "--key",
        "moved/sub/c",
        got.to_str().unwrap(),
    ])?;
    assert_eq!(fs::read_to_string(&got)?, "C");
    assert_eq!(node_bytes_written(&cluster), written, "rename moved bytes");

    // RENAME_NOREPLACE: refused, and nothing changes.
    let refused = rename(&cluster, "other", "moved/a", &["--no-replace"])?;
    assert!(refused.starts_with("412"), "{refused}");
    assert_eq!(keys(&cluster)?.len(), 5);
    // Without it, the destination is replaced.
    assert_eq!(rename(&cluster, "other", "moved/a", &[])?, "200 {\"renamed\":1}");
    cluster.aws_ok(&[
        "s3api",
        "get-object",
        "--bucket",
        "ren",
        "--key",
        "moved/a",
        got.to_str().unwrap(),
    ])?;
    assert_eq!(fs::read_to_string(&got)?, "O");

    let missing = rename(&cluster, "nothing-here", "x", &[])?;
    assert!(missing.starts_with("404"), "{missing}");
    let into_itself = rename(&cluster, "moved/", "moved/inner/", &["--prefix"])?;
    assert!(into_itself.starts_with("400"), "{into_itself}");
    let unsigned = rename(&cluster, "moved/b", "stolen", &["--unsigned"])?;
    assert!(unsigned.starts_with("403"), "{unsigned}");
    assert!(keys(&cluster)?.contains(&"moved/b".to_string()));
    Ok(())
}
