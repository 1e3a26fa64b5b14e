//! Past views (issue 24): a view "as of T" is a consistent cut, so a
//! transaction (a directory rename, a batch) shows wholly or not at all.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result};
use bucketfs_tests::Cluster;
use jiff::{SignedDuration, Timestamp};

fn versioned_bucket(cluster: &Cluster, bucket: &str) -> Result<()> {
    cluster.aws_ok(&["s3", "mb", &format!("s3://{bucket}")])?;
    cluster.aws_ok(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        bucket,
        "--versioning-configuration",
        "Status=Enabled",
    ])?;
    Ok(())
}

/// One entry of ListObjectVersions: a version or a delete marker.
#[derive(Debug, Clone)]
struct Listed {
    key: String,
    modified: Timestamp,
    deleted: bool,
}

/// Every version and delete marker of `bucket`, newest first per key.
fn list_versions(cluster: &Cluster, bucket: &str) -> Result<Vec<Listed>> {
    let out = cluster.aws_ok(&["s3api", "list-object-versions", "--bucket", bucket, "--output", "json"])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    let mut listed = Vec::new();
    for (field, deleted) in [("Versions", false), ("DeleteMarkers", true)] {
        for v in json[field].as_array().into_iter().flatten() {
            listed.push(Listed {
                key: v["Key"].as_str().context("Key")?.to_string(),
                modified: v["LastModified"].as_str().context("LastModified")?.parse()?,
                deleted,
            });
        }
    }
    Ok(listed)
}

/// The keys that exist in the view as of `at`: each key's newest entry no
/// later than `at`, unless that is a delete marker.
fn view_at(listed: &[Listed], at: Timestamp) -> Vec<String> {
    let mut newest: BTreeMap<&str, &Listed> = BTreeMap::new();
    for v in listed.iter().filter(|v| v.modified <= at) {
        match newest.get(v.key.as_str()) {
            Some(seen) if seen.modified >= v.modified => {}
            _ => {
                newest.insert(&v.key, v);
            }
        }
    }
    newest
        .into_values()
        .filter(|v| !v.deleted)
        .map(|v| v.key.clone())
        .collect()
}

/// The files under `prefix` (not the directory's own `prefix` object).
fn count_under(keys: &[String], prefix: &str) -> usize {
    keys.iter().filter(|k| k.len() > prefix.len() && k.starts_with(prefix)).count()
}

#[test]
fn a_renamed_tree_is_wholly_at_one_name_in_every_past_view() -> Result<()> {
    const FILES: usize = 1000;
    let cluster = Cluster::start()?;
    versioned_bucket(&cluster, "travel")?;
    let mnt = cluster.dir.join("mnt");
    {
        let _mount = cluster.mount("travel", &mnt)?;
        fs::create_dir(mnt.join("a"))?;
        for i in 0..FILES {
            fs::write(mnt.join(format!("a/f{i:04}")), format!("{i}\n"))?;
        }
    }
    {
        let _mount = cluster.mount("travel", &mnt)?;
        fs::rename(mnt.join("a"), mnt.join("b"))?;
    }

    // The rename's new versions and delete markers carry one time.
    let listed = list_versions(&cluster, "travel")?;
    let renamed: Vec<&Listed> = listed
        .iter()
        .filter(|v| v.key.starts_with("b/") || (v.key.starts_with("a/") && v.deleted))
        .collect();
    // (mkdir made the directory's own object, `a/`, which moved too.)
    assert_eq!(renamed.len(), 2 * (FILES + 1), "a version at b/ and a marker at a/ per name");
    let stamps: std::collections::BTreeSet<Timestamp> = renamed.iter().map(|v| v.modified).collect();
    assert_eq!(stamps.len(), 1, "the rename's entries carry {} times", stamps.len());
    let moment = *stamps.first().unwrap();

    // Every past view the listing can express shows the tree at one name.
    let mut moments: Vec<Timestamp> = listed.iter().map(|v| v.modified).collect();
    moments.sort();
    moments.dedup();
    for &at in &moments {
        let keys = view_at(&listed, at);
        let (a, b) = (count_under(&keys, "a/"), count_under(&keys, "b/"));
        assert!(
            (b == 0 && at < moment) || (a == 0 && b == FILES && at >= moment),
            "the view at {at} shows {a} files in a/ and {b} in b/"
        );
    }

    // So do mounts of the moments just before, at and after it.
    let millisecond = SignedDuration::from_millis(1);
    for (i, at) in [moment - millisecond, moment, moment + millisecond].into_iter().enumerate() {
        let dir = cluster.dir.join(format!("at{i}"));
        let _view = cluster.mount_with("travel", &dir, &["--at", &at.to_string()])?;
        let count = |name: &str| fs::read_dir(dir.join(name)).map_or(0, |d| d.count());
        let (a, b) = (count("a"), count("b"));
        let expected = if at < moment { (FILES, 0) } else { (0, FILES) };
        assert_eq!((a, b), expected, "a mount at {at} (the rename at {moment})");
    }
    Ok(())
}
