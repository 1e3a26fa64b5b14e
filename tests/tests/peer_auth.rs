//! Cluster members trust only each other: a storage node refuses every
//! chunk request not signed with the cluster secret (or signed too long
//! ago, or with a body other than the one signed); ZooKeeper lets no
//! stranger register a node; and a router catches a node that serves
//! altered bytes under a matching crc32c.

use std::fs;
use std::time::Duration;

use anyhow::Result;
use bucketfs_common::chunk_api::{self, ERROR_HEADER};
use bucketfs_common::chunk_client::{ChunkClient, ChunkError};
use bucketfs_common::membership::NODES_PATH;
use bucketfs_common::peer_auth::{
    self, ClusterSecret, CONTENT_HASH_HEADER, DATE_HEADER, MAX_SKEW, SIGNATURE_HEADER,
};
use bucketfs_common::{ChunkId, Fsync};
use bucketfs_tests::tools::{random_file, sha256_file};
use bucketfs_tests::{wait_until, Cluster};
use zookeeper_client as zk;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn node_addr(cluster: &Cluster, i: usize) -> String {
    format!("127.0.0.1:{}", cluster.ports.nodes[i - 1])
}

/// Stores `body` as chunk `id` on the node at `addr`, as a router does.
async fn member_put(
    secret: &ClusterSecret,
    addr: &str,
    id: &ChunkId,
    body: bytes::Bytes,
) -> Result<(), ChunkError> {
    let (crc, hash) = (crc32c::crc32c(&body), peer_auth::content_hash(&body));
    ChunkClient::new(secret.clone())
        .put(addr, id, crc, &hash, body, Fsync::Now)
        .await
}

/// Sends a request to a node with the given signing headers (none if
/// `credentials` is `None`); returns the status and the error code.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    credentials: Option<&peer_auth::Credentials>,
    body: &'static [u8],
) -> (u16, String) {
    let mut request = http.request(method, url).body(body);
    if let Some(c) = credentials {
        request = request
            .header(DATE_HEADER, &c.date)
            .header(CONTENT_HASH_HEADER, &c.content_hash)
            .header(SIGNATURE_HEADER, &c.signature);
    }
    let response = request.send().await.expect("the node answers");
    let code = response
        .headers()
        .get(ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (response.status().as_u16(), code)
}

#[test]
fn nodes_and_zookeeper_refuse_strangers() -> Result<()> {
    let cluster = Cluster::start()?;
    let secret = ClusterSecret::from_file(&cluster.cluster_secret_path())?;
    let stranger = ClusterSecret::new(&[b'x'; 32]).unwrap();
    let addr = node_addr(&cluster, 1);
    runtime().block_on(async {
        let member = ChunkClient::new(secret.clone());
        let id = ChunkId::random();
        let body = bytes::Bytes::from_static(b"a chunk's bytes");
        member_put(&secret, &addr, &id, body.clone())
            .await
            .expect("a member may write");

        // Unsigned, or signed with another secret: refused, whatever the verb.
        let http = reqwest::Client::new();
        let path = chunk_api::chunk_path(&id);
        let url = format!("http://{addr}{path}");
        let list = format!("http://{addr}{}", chunk_api::CHUNKS_PATH);
        for (method, url) in [
            (reqwest::Method::GET, &url),
            (reqwest::Method::PUT, &url),
            (reqwest::Method::DELETE, &url),
            (reqwest::Method::HEAD, &url),
            (reqwest::Method::GET, &list),
        ] {
            let (status, code) = send(&http, method.clone(), url, None, b"forged").await;
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "unsigned {method} {url}"
            );
            let path = url.trim_start_matches(&format!("http://{addr}"));
            let wrong = stranger.sign(method.as_str(), path, peer_auth::content_hash(b"forged"));
            let (status, _) = send(&http, method.clone(), url, Some(&wrong), b"forged").await;
            assert_eq!(status, 403, "{method} {url} signed by a stranger");
        }
        let foreign = ChunkClient::new(stranger.clone());
        assert!(matches!(
            foreign.get(&addr, &id.to_string(), 0, 4).await,
            Err(ChunkError::Failed(e)) if e.contains("forbidden")
        ));

        // A request replayed past its window, and one dated in the future.
        for offset in [-(MAX_SKEW.as_secs() as i64) - 60, MAX_SKEW.as_secs() as i64 + 60] {
            let date = (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs())
            .saturating_add_signed(offset);
            let stale = secret.sign_at(date, "DELETE", &path, peer_auth::content_hash(b""));
            let (status, code) = send(&http, reqwest::Method::DELETE, &url, Some(&stale), b"").await;
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "dated {offset} s from now"
            );
        }

        // A body other than the one signed is refused and stores nothing.
        let signed_for_other = secret.sign("PUT", &path, peer_auth::content_hash(b"the signed body"));
        let (status, _) = send(
            &http,
            reqwest::Method::PUT,
            &url,
            Some(&signed_for_other),
            b"another body!!!",
        )
        .await;
        assert_eq!(status, 403);
        let kept = member
            .get(&addr, &id.to_string(), 0, body.len() as u64)
            .await
            .unwrap();
        assert_eq!(kept.concat(), body, "the refused PUT changed nothing");

        // The fsync choice is in the signed path: a member's signature for an
        // fsynced PUT does not cover the same PUT asking for a deferred write.
        let fsynced = secret.sign("PUT", &path, peer_auth::content_hash(b"forged"));
        let deferred = format!("{url}?{}", bucketfs_common::DEFERRED_QUERY);
        let (status, _) = send(&http, reqwest::Method::PUT, &deferred, Some(&fsynced), b"forged").await;
        assert_eq!(status, 403, "a deferred write under an fsynced write's signature");

        // ZooKeeper: a stranger can neither register nor look.
        let zk_addr = format!("127.0.0.1:{}", cluster.ports.zookeeper);
        let anonymous = zk::Client::connector().connect(&zk_addr).await.unwrap();
        let record = br#"{"id":"evil","addr":"127.0.0.1:1","capacity_bytes":1,"free_bytes":1}"#;
        let evil = format!("{NODES_PATH}/evil-node");
        for mode in [zk::CreateMode::Ephemeral, zk::CreateMode::Persistent] {
            let created = anonymous
                .create(&evil, record, &mode.with_acls(zk::Acls::anyone_all()))
                .await;
            assert_eq!(created.err(), Some(zk::Error::NoAuth), "{mode:?} registration");
        }
        assert_eq!(
            anonymous.list_children(NODES_PATH).await.err(),
            Some(zk::Error::NoAuth)
        );
        let guessed = zk::Client::connector()
            .with_auth("digest", b"bucketfs:guess")
            .connect(&zk_addr)
            .await
            .unwrap();
        assert_eq!(
            guessed
                .create(
                    &evil,
                    record,
                    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
                )
                .await
                .err(),
            Some(zk::Error::NoAuth)
        );
    });
    let refused = cluster
        .node_metric(1, "bucketfs_node_refused_requests_total")
        .unwrap_or(0);
    assert!(refused >= 14, "the node counted {refused} refused requests");
    // The members still see each other and serve.
    cluster.wait_live_nodes(1, bucketfs_tests::STORAGE_NODES)?;
    cluster.aws_ok(&["s3", "mb", "s3://still-works"])?;
    Ok(())
}

#[test]
fn a_replica_forged_under_a_matching_crc32c_is_caught_and_quarantined() -> Result<()> {
    let cluster = Cluster::start()?;
    let work = cluster.dir.join("work");
    fs::create_dir_all(&work)?;
    cluster.aws_ok(&["s3", "mb", "s3://bkt"])?;
    let file = work.join("victim.bin");
    random_file(&file, 300_000, 5)?;
    let original = fs::read(&file)?;
    let sha = sha256_file(&file)?;
    cluster.aws_ok(&[
        "s3",
        "cp",
        "--no-progress",
        file.to_str().unwrap(),
        "s3://bkt/victim",
    ])?;
    let chunk_dir = |i: usize| cluster.node_data_dir(i).join("chunks");
    let held_by_first = || -> Vec<String> {
        fs::read_dir(chunk_dir(1))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|shard| fs::read_dir(shard.path()).into_iter().flatten().flatten())
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect()
    };
    wait_until("node 1 holds the chunk", Duration::from_secs(10), || {
        held_by_first().len() == 1
    })?;
    let id: ChunkId = held_by_first()[0]
        .parse()
        .expect("a chunk file is named by its id");

    // Node 1 now holds other bytes of the same length and crc32c, consistent
    // with its own block checksums: only a cryptographic hash tells.
    let forged =
        bucketfs_common::testing::forge_crc32c(&vec![b'!'; original.len() - 4], crc32c::crc32c(&original));
    assert_eq!(crc32c::crc32c(&forged), crc32c::crc32c(&original));
    let secret = ClusterSecret::from_file(&cluster.cluster_secret_path())?;
    runtime().block_on(async {
        member_put(&secret, &node_addr(&cluster, 1), &id, forged.into())
            .await
            .expect("the node stores what a member sends");
    });

    let got = work.join("got.bin");
    for _ in 0..3 {
        cluster.aws_ok(&[
            "s3",
            "cp",
            "--no-progress",
            "s3://bkt/victim",
            got.to_str().unwrap(),
        ])?;
        assert_eq!(sha256_file(&got)?, sha, "the forged replica was served");
    }
    let failures: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_checksum_failures_total"))
        .sum();
    assert!(failures >= 1, "no router noticed the forgery");
    let logs: String = (1..=2)
        .map(|i| fs::read_to_string(cluster.log_path(&format!("router-{i}"))).unwrap_or_default())
        .collect();
    assert!(logs.contains("altered bytes"), "the forgery was not logged");
    // Quarantined: its record dropped, later reads go straight to a good copy.
    let before = failures;
    for _ in 0..3 {
        cluster.aws_ok(&[
            "s3",
            "cp",
            "--no-progress",
            "s3://bkt/victim",
            got.to_str().unwrap(),
        ])?;
    }
    let after: u64 = (1..=2)
        .filter_map(|i| cluster.router_metric(i, "bucketfs_router_checksum_failures_total"))
        .sum();
    assert_eq!(after, before, "the quarantined replica was read again");
    Ok(())
}
