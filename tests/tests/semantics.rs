//! S3 semantics through the real AWS CLI: versioning, conditional requests,
//! copies by reference, listings, multipart copies and bad input.

use std::fs;
use std::process::Command;

use anyhow::Result;
use bucketfs_tests::tools::{random_file, sha256_file};
use bucketfs_tests::Cluster;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn api(cluster: &Cluster, args: &[&str]) -> Result<Value> {
    let mut full = vec!["s3api"];
    full.extend_from_slice(args);
    Ok(json(&cluster.aws_ok(&full)?))
}

/// Runs an s3api call expected to fail; returns its stderr.
/// Turns `bucket`'s versioning to `status` (Enabled or Suspended).
fn set_versioning(cluster: &Cluster, bucket: &str, status: &str) -> Result<Value> {
    let configuration = format!("Status={status}");
    api(
        cluster,
        &[
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            &configuration,
        ],
    )
}

fn api_err(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let mut full = vec!["s3api"];
    full.extend_from_slice(args);
    let out = cluster.aws(&full).output()?;
    assert!(!out.status.success(), "expected s3api {args:?} to fail");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn versions_conditionals_copies_listings_and_bad_input() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    let w = |name: &str| work.join(name).to_str().unwrap().to_string();
    api(&cluster, &["create-bucket", "--bucket", "ver"])?;

    // ---- versioning: every overwrite keeps the old version -----------------
    set_versioning(&cluster, "ver", "Enabled")?;
    let status = api(&cluster, &["get-bucket-versioning", "--bucket", "ver"])?;
    assert_eq!(status["Status"], "Enabled");
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(work.join("v"), format!("version {i}\n"))?;
        let out = api(
            &cluster,
            &[
                "put-object",
                "--bucket",
                "ver",
                "--key",
                "doc.txt",
                "--body",
                &w("v"),
            ],
        )?;
        ids.push(out["VersionId"].as_str().expect("a version id").to_string());
    }
    for (i, id) in ids.iter().enumerate() {
        api(
            &cluster,
            &[
                "get-object",
                "--bucket",
                "ver",
                "--key",
                "doc.txt",
                "--version-id",
                id,
                &w("got"),
            ],
        )?;
        assert_eq!(fs::read_to_string(work.join("got"))?, format!("version {i}\n"));
    }
    let versions = api(&cluster, &["list-object-versions", "--bucket", "ver"])?;
    assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(3));
    let deleted = api(
        &cluster,
        &["delete-object", "--bucket", "ver", "--key", "doc.txt"],
    )?;
    assert_eq!(deleted["DeleteMarker"], true);
    let err = api_err(
        &cluster,
        &["get-object", "--bucket", "ver", "--key", "doc.txt", &w("got")],
    )?;
    assert!(err.contains("NoSuchKey"), "{err}");
    api(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "ver",
            "--key",
            "doc.txt",
            "--version-id",
            &ids[1],
            &w("got"),
        ],
    )?;
    assert_eq!(fs::read_to_string(work.join("got"))?, "version 1\n");
    // Deleting the delete marker brings the newest version back.
    let marker = deleted["VersionId"].as_str().unwrap().to_string();
    api(
        &cluster,
        &[
            "delete-object",
            "--bucket",
            "ver",
            "--key",
            "doc.txt",
            "--version-id",
            &marker,
        ],
    )?;
    api(
        &cluster,
        &["get-object", "--bucket", "ver", "--key", "doc.txt", &w("got")],
    )?;
    assert_eq!(fs::read_to_string(work.join("got"))?, "version 2\n");
    // DeleteObjects in one statement: a marker per key (a key named twice
    // gets one), a named version removed, an absent key still "deleted".
    fs::write(work.join("v"), "other\n")?;
    api(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "ver",
            "--key",
            "other.txt",
            "--body",
            &w("v"),
        ],
    )?;
    let batch = api(
        &cluster,
        &[
            "delete-objects",
            "--bucket",
            "ver",
            "--delete",
            &format!(
                r#"{{"Objects":[{{"Key":"doc.txt"}},{{"Key":"other.txt"}},{{"Key":"doc.txt"}},{{"Key":"never.txt"}},{{"Key":"doc.txt","VersionId":"{}"}}]}}"#,
                ids[0]
            ),
        ],
    )?;
    let done = batch["Deleted"].as_array().expect("Deleted");
    assert_eq!(done.len(), 5, "{batch}");
    assert!(batch.get("Errors").is_none(), "{batch}");
    for d in &done[..4] {
        assert_eq!(d["DeleteMarker"], true, "{batch}");
        assert!(d["DeleteMarkerVersionId"].is_string(), "{batch}");
    }
    assert_eq!(done[0]["DeleteMarkerVersionId"], done[2]["DeleteMarkerVersionId"]);
    let versions = api(&cluster, &["list-object-versions", "--bucket", "ver"])?;
    let markers = versions["DeleteMarkers"].as_array().map(Vec::len);
    // doc.txt, other.txt, never.txt (S3 marks absent keys too).
    assert_eq!(markers, Some(3), "{versions}");
    // Versions 1 and 2 of doc.txt and other.txt's one; version 0 is gone.
    assert_eq!(
        versions["Versions"].as_array().map(Vec::len),
        Some(3),
        "{versions}"
    );
    // Suspended: the batch's marker is the null version and replaces the
    // key's null version; versions made while enabled stay.
    set_versioning(&cluster, "ver", "Suspended")?;
    fs::write(work.join("v"), "null version\n")?;
    api(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "ver",
            "--key",
            "other.txt",
            "--body",
            &w("v"),
        ],
    )?;
    let batch = api(
        &cluster,
        &[
            "delete-objects",
            "--bucket",
            "ver",
            "--delete",
            r#"{"Objects":[{"Key":"other.txt"}]}"#,
        ],
    )?;
    assert_eq!(batch["Deleted"][0]["DeleteMarker"], true, "{batch}");
    assert_eq!(batch["Deleted"][0]["DeleteMarkerVersionId"], "null", "{batch}");
    let versions = api(
        &cluster,
        &["list-object-versions", "--bucket", "ver", "--prefix", "other.txt"],
    )?;
    let ids_of = |kind: &str| -> Vec<String> {
        versions[kind]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v["VersionId"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // The enabled-era marker and the null one; the enabled-era version.
    let markers = ids_of("DeleteMarkers");
    assert_eq!(markers.len(), 2, "{versions}");
    assert!(markers.iter().any(|id| id == "null"), "{versions}");
    assert_eq!(ids_of("Versions").len(), 1, "{versions}");
    assert!(ids_of("Versions").iter().all(|id| id != "null"), "{versions}");
    set_versioning(&cluster, "ver", "Enabled")?;

    // ---- conditional requests ----------------------------------------------
    api(&cluster, &["create-bucket", "--bucket", "cond"])?;
    fs::write(work.join("c"), "conditional\n")?;
    let put = api(
        &cluster,
        &["put-object", "--bucket", "cond", "--key", "k", "--body", &w("c")],
    )?;
    let etag = put["ETag"].as_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", md5_of(b"conditional\n")));
    let err = api_err(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "cond",
            "--key",
            "k",
            "--if-none-match",
            &etag,
            &w("got"),
        ],
    )?;
    assert!(err.contains("304") || err.contains("Not Modified"), "{err}");
    let err = api_err(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "cond",
            "--key",
            "k",
            "--if-match",
            "\"nope\"",
            &w("got"),
        ],
    )?;
    assert!(err.contains("PreconditionFailed") || err.contains("412"), "{err}");
    api(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "cond",
            "--key",
            "k",
            "--if-match",
            &etag,
            &w("got"),
        ],
    )?;
    let err = api_err(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "cond",
            "--key",
            "k",
            "--if-modified-since",
            "2100-01-01T00:00:00Z",
            &w("got"),
        ],
    )?;
    assert!(err.contains("304") || err.contains("Not Modified"), "{err}");
    let err = api_err(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "cond",
            "--key",
            "k",
            "--body",
            &w("c"),
            "--if-none-match",
            "*",
        ],
    )?;
    assert!(err.contains("PreconditionFailed") || err.contains("412"), "{err}");

    // ---- ranged GET ----------------------------------------------------------
    let big = work.join("big");
    random_file(&big, 20 * 1024 * 1024, 9)?;
    api(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "cond",
            "--key",
            "big",
            "--body",
            &w("big"),
        ],
    )?;
    let range = api(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "cond",
            "--key",
            "big",
            "--range",
            "bytes=8388600-8388615",
            &w("got"),
        ],
    )?;
    assert_eq!(range["ContentRange"], "bytes 8388600-8388615/20971520");
    assert_eq!(fs::read(work.join("got"))?, fs::read(&big)?[8388600..8388616]);

    // ---- CopyObject moves references, not bytes ------------------------------
    let written_before = cluster.node_bytes_written();
    api(
        &cluster,
        &[
            "copy-object",
            "--bucket",
            "cond",
            "--key",
            "big-copy",
            "--copy-source",
            "cond/big",
        ],
    )?;
    assert_eq!(
        cluster.node_bytes_written(),
        written_before,
        "CopyObject wrote chunk bytes"
    );
    api(
        &cluster,
        &["get-object", "--bucket", "cond", "--key", "big-copy", &w("got")],
    )?;
    assert_eq!(sha256_file(&work.join("got"))?, sha256_file(&big)?);
    // Metadata replace on copy (how tools change metadata in place).
    api(
        &cluster,
        &[
            "copy-object",
            "--bucket",
            "cond",
            "--key",
            "big-copy",
            "--copy-source",
            "cond/big-copy",
            "--metadata-directive",
            "REPLACE",
            "--metadata",
            "mode=33188,owner=me",
        ],
    )?;
    let head = api(
        &cluster,
        &["head-object", "--bucket", "cond", "--key", "big-copy"],
    )?;
    assert_eq!(head["Metadata"]["mode"], "33188");
    assert_eq!(head["ContentLength"], 20971520);

    // ---- UploadPartCopy with ranges, then Complete ----------------------------
    let upload = api(
        &cluster,
        &["create-multipart-upload", "--bucket", "cond", "--key", "spliced"],
    )?;
    let upload_id = upload["UploadId"].as_str().unwrap().to_string();
    let p1 = api(
        &cluster,
        &[
            "upload-part-copy",
            "--bucket",
            "cond",
            "--key",
            "spliced",
            "--upload-id",
            &upload_id,
            "--part-number",
            "1",
            "--copy-source",
            "cond/big",
            "--copy-source-range",
            "bytes=5242880-11534335",
        ],
    )?;
    fs::write(work.join("tail"), "tail bytes\n")?;
    let p2 = api(
        &cluster,
        &[
            "upload-part",
            "--bucket",
            "cond",
            "--key",
            "spliced",
            "--upload-id",
            &upload_id,
            "--part-number",
            "2",
            "--body",
            &w("tail"),
        ],
    )?;
    let parts = api(
        &cluster,
        &[
            "list-parts",
            "--bucket",
            "cond",
            "--key",
            "spliced",
            "--upload-id",
            &upload_id,
        ],
    )?;
    assert_eq!(parts["Parts"].as_array().map(Vec::len), Some(2));
    let uploads = api(&cluster, &["list-multipart-uploads", "--bucket", "cond"])?;
    assert_eq!(uploads["Uploads"][0]["UploadId"], upload_id.as_str());
    let layout = format!(
        r#"{{"Parts":[{{"PartNumber":1,"ETag":{}}},{{"PartNumber":2,"ETag":{}}}]}}"#,
        p1["CopyPartResult"]["ETag"], p2["ETag"]
    );
    let done = api(
        &cluster,
        &[
            "complete-multipart-upload",
            "--bucket",
            "cond",
            "--key",
            "spliced",
            "--upload-id",
            &upload_id,
            "--multipart-upload",
            &layout,
        ],
    )?;
    assert!(done["ETag"].as_str().unwrap().ends_with("-2\""), "{done}");
    api(
        &cluster,
        &["get-object", "--bucket", "cond", "--key", "spliced", &w("got")],
    )?;
    let mut expected = fs::read(&big)?[5242880..11534336].to_vec();
    expected.extend_from_slice(b"tail bytes\n");
    assert_eq!(fs::read(work.join("got"))?, expected);
    // A small non-final part is refused.
    let upload = api(
        &cluster,
        &["create-multipart-upload", "--bucket", "cond", "--key", "tiny"],
    )?;
    let tiny_id = upload["UploadId"].as_str().unwrap().to_string();
    let mut etags = Vec::new();
    for n in ["1", "2"] {
        let p = api(
            &cluster,
            &[
                "upload-part",
                "--bucket",
                "cond",
                "--key",
                "tiny",
                "--upload-id",
                &tiny_id,
                "--part-number",
                n,
                "--body",
                &w("tail"),
            ],
        )?;
        etags.push(p["ETag"].to_string());
    }
    let layout = format!(
        r#"{{"Parts":[{{"PartNumber":1,"ETag":{}}},{{"PartNumber":2,"ETag":{}}}]}}"#,
        etags[0], etags[1]
    );
    let err = api_err(
        &cluster,
        &[
            "complete-multipart-upload",
            "--bucket",
            "cond",
            "--key",
            "tiny",
            "--upload-id",
            &tiny_id,
            "--multipart-upload",
            &layout,
        ],
    )?;
    assert!(err.contains("EntityTooSmall"), "{err}");
    api(
        &cluster,
        &[
            "abort-multipart-upload",
            "--bucket",
            "cond",
            "--key",
            "tiny",
            "--upload-id",
            &tiny_id,
        ],
    )?;
    let err = api_err(
        &cluster,
        &[
            "list-parts",
            "--bucket",
            "cond",
            "--key",
            "tiny",
            "--upload-id",
            &tiny_id,
        ],
    )?;
    assert!(err.contains("NoSuchUpload"), "{err}");

    // ---- listings: delimiter, pagination, byte order --------------------------
    api(&cluster, &["create-bucket", "--bucket", "list"])?;
    fs::write(work.join("e"), "")?;
    let keys = [
        "a/1",
        "a/2",
        "b",
        "c/x/y",
        "c/z",
        "d",
        "e+f g",
        "\u{e9}t\u{e9}",
        "Z",
    ];
    for k in keys {
        api(
            &cluster,
            &["put-object", "--bucket", "list", "--key", k, "--body", &w("e")],
        )?;
    }
    let top = api(
        &cluster,
        &["list-objects-v2", "--bucket", "list", "--delimiter", "/"],
    )?;
    let prefixes: Vec<&str> = top["CommonPrefixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, ["a/", "c/"]);
    let objects: Vec<&str> = top["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(
        objects,
        ["Z", "b", "d", "e+f g", "\u{e9}t\u{e9}"],
        "byte order, as S3"
    );
    // Paging two entries at a time visits every entry once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args = vec![
            "list-objects-v2",
            "--bucket",
            "list",
            "--delimiter",
            "/",
            "--max-keys",
            "2",
            "--no-paginate",
        ];
        if let Some(t) = &token {
            args.extend(["--continuation-token", t.as_str()]);
        }
        let page = api(&cluster, &args)?;
        for o in page["Contents"].as_array().into_iter().flatten() {
            seen.push(o["Key"].as_str().unwrap().to_string());
        }
        for p in page["CommonPrefixes"].as_array().into_iter().flatten() {
            seen.push(p["Prefix"].as_str().unwrap().to_string());
        }
        match page["NextContinuationToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["Z", "a/", "b", "c/", "d", "e+f g", "\u{e9}t\u{e9}"]);
    let v1 = api(
        &cluster,
        &[
            "list-objects",
            "--bucket",
            "list",
            "--prefix",
            "c/",
            "--delimiter",
            "/",
        ],
    )?;
    assert_eq!(v1["Contents"][0]["Key"], "c/z");
    assert_eq!(v1["CommonPrefixes"][0]["Prefix"], "c/x/");

    // ---- bad input --------------------------------------------------------------
    // A key with ../ is an ordinary key.
    api(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "list",
            "--key",
            "../../etc/passwd",
            "--body",
            &w("c"),
        ],
    )?;
    let all = api(
        &cluster,
        &["list-objects-v2", "--bucket", "list", "--prefix", "../"],
    )?;
    assert_eq!(all["Contents"][0]["Key"], "../../etc/passwd");
    api(
        &cluster,
        &[
            "get-object",
            "--bucket",
            "list",
            "--key",
            "../../etc/passwd",
            &w("got"),
        ],
    )?;
    assert_eq!(fs::read_to_string(work.join("got"))?, "conditional\n");
    // A wrong Content-MD5: BadDigest, and no version.
    let err = api_err(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "list",
            "--key",
            "md5",
            "--body",
            &w("c"),
            "--content-md5",
            "AAAAAAAAAAAAAAAAAAAAAA==",
        ],
    )?;
    assert!(err.contains("BadDigest"), "{err}");
    let err = api_err(&cluster, &["head-object", "--bucket", "list", "--key", "md5"])?;
    assert!(err.contains("404") || err.contains("Not Found"), "{err}");
    // Flexible checksums: a correct one is verified and echoed, a wrong one refused.
    let ok = api(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "list",
            "--key",
            "summed",
            "--body",
            &w("c"),
            "--checksum-algorithm",
            "SHA256",
        ],
    )?;
    let sha = {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"conditional\n"))
    };
    assert_eq!(ok["ChecksumSHA256"], sha.as_str(), "{ok}");
    let err = api_err(
        &cluster,
        &[
            "put-object",
            "--bucket",
            "list",
            "--key",
            "badsum",
            "--body",
            &w("c"),
            "--checksum-crc32",
            "AAAAAA==",
        ],
    )?;
    assert!(err.contains("BadDigest"), "{err}");
    let err = api_err(&cluster, &["head-object", "--bucket", "list", "--key", "badsum"])?;
    assert!(err.contains("404") || err.contains("Not Found"), "{err}");
    // A body shorter than its Content-Length: no version.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/raw_put.py");
    let out = Command::new("python3")
        .args([script, &cluster.endpoint(), "list", "short", "100000", "5000"])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(!reply.contains(" 200"), "truncated PUT answered {reply}");
    let err = api_err(&cluster, &["head-object", "--bucket", "list", "--key", "short"])?;
    assert!(err.contains("404") || err.contains("Not Found"), "{err}");
    // A body declared larger than S3's 5 GiB limit is refused before it is read.
    let out = Command::new("python3")
        .args([
            script,
            &cluster.endpoint(),
            "list",
            "huge",
            "6442450944",
            "1000",
            "--wait",
        ])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains("EntityTooLarge"), "oversized PUT answered {reply}");
    // A bad signature: 403 SignatureDoesNotMatch.
    let out = cluster
        .aws(&["s3api", "list-objects-v2", "--bucket", "list"])
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret")
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    // An unknown access key: 403 InvalidAccessKeyId.
    let out = cluster
        .aws(&["s3api", "list-objects-v2", "--bucket", "list"])
        .env("AWS_ACCESS_KEY_ID", "AKNOBODY")
        .output()?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidAccessKeyId"));
    // Deleting a bucket that holds objects fails.
    let err = api_err(&cluster, &["delete-bucket", "--bucket", "list"])?;
    assert!(err.contains("BucketNotEmpty"), "{err}");
    // Every version, copy, multipart and delete above kept the running
    // totals equal to a recount.
    if let Some(differ) = bucketfs_tests::tallies::mismatches(|sql| cluster.psql(sql))? {
        panic!("{differ}");
    }
    Ok(())
}

fn md5_of(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

#[test]
fn virtual_host_style_beside_path_style() -> Result<()> {
    let cluster = Cluster::start_with_router_args(&["--domain", "s3.test"])?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/virtual_host.py");
    let out = Command::new("python3")
        .args([script, &cluster.ports.haproxy.to_string(), "vhost"])
        .env("AWS_ACCESS_KEY_ID", &cluster.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.secret_key)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The same object through path style, by IP.
    let listing = cluster.aws_ok(&["s3", "ls", "--recursive", "s3://vhost/"])?;
    assert!(listing.contains("hello/world.txt"), "{listing}");
    Ok(())
}

/// ListObjectsV2 and ListObjects, paged every way, against a model of
/// S3's answer over keys made to trip a listing: delimiters of one and two
/// characters and not ASCII, keys equal to prefixes (boto3,
/// `tests/scripts/listing.py`).
#[test]
fn listings_match_a_model_of_s3s() -> Result<()> {
    let cluster = Cluster::start()?;
    cluster.run_script("listing.py", &[&cluster.endpoint(), "listing"])
}
