//! Users, ownership and access control, judged by boto3 as applications use
//! it (`tests/scripts/access.py`): two users and an anonymous client.

use std::process::Command;

use anyhow::Result;
use bucketfs_tests::Cluster;

#[test]
fn users_see_and_touch_only_what_they_own_or_are_granted() -> Result<()> {
    let cluster = Cluster::start()?;
    let (a_id, a_key, a_secret) = cluster.create_user("alice")?;
    let (b_id, b_key, b_secret) = cluster.create_user("bob")?;
    let (_, revoked_key, revoked_secret) = cluster.create_user("carol")?;
    let revoked = cluster.router_key(&["revoke", &revoked_key])?;
    assert!(revoked.contains("revoked"), "{revoked}");
    let listed = cluster.router_key(&["list", "--user", "carol"])?;
    assert!(
        listed.contains(&revoked_key) && !listed.contains(&revoked_secret),
        "{listed}"
    );
    assert!(
        cluster.router_key(&["revoke", &revoked_key]).is_err(),
        "revoked twice"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/access.py");
    let out = Command::new("python3")
        .args([script, &cluster.endpoint()])
        .env("A_ID", &a_id)
        .env("A_KEY", &a_key)
        .env("A_SECRET", &a_secret)
        .env("B_ID", &b_id)
        .env("B_NAME", "bob")
        .env("B_KEY", &b_key)
        .env("B_SECRET", &b_secret)
        .env("REVOKED_KEY", &revoked_key)
        .env("REVOKED_SECRET", &revoked_secret)
        .output()?;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("OK"),
        "access.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
