//! `router key ...` (users' access keys) and `router space`, run against
//! the metadata store directly (no router needs to run).

use crate::meta::Meta;

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Creates an access key for a user (made if new) and prints it with
    /// its secret, which is shown this once.
    Create {
        /// The user's display name.
        #[arg(long)]
        user: String,
        /// The key to create (default: a fresh random one).
        #[arg(long, requires = "secret_key")]
        access_key: Option<String>,
        /// Its secret (default: a fresh random one).
        #[arg(long, requires = "access_key")]
        secret_key: Option<String>,
    },
    /// Lists keys (never secrets): key, user, canonical id, created, revoked.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revokes a key: requests signed with it are refused (by every router
    /// within 30 s, the time a key's lookup is cached).
    Revoke { access_key: String },
}

/// Runs one key command.
pub async fn run(meta: &Meta, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            user,
            access_key,
            secret_key,
        } => {
            if user.trim().is_empty() {
                anyhow::bail!("a user name must not be empty");
            }
            let access_key =
                access_key.unwrap_or_else(|| format!("BFS{}", hex::encode_upper(rand::random::<[u8; 8]>())));
            let secret_key = secret_key.unwrap_or_else(|| hex::encode(rand::random::<[u8; 20]>()));
            let user = meta.ensure_user(&user).await?;
            meta.put_access_key(&user, &access_key, &secret_key).await?;
            println!(
                "user={}\nuser_id={}\naccess_key={access_key}\nsecret_key={secret_key}",
                user.name, user.id
            );
        }
        KeyCommand::List { user } => {
            for key in meta.access_keys(user.as_deref()).await? {
                let revoked = key.revoked_at.map_or_else(|| "-".to_string(), |t| t.to_string());
                println!(
                    "{}\t{}\t{}\t{}\t{revoked}",
                    key.access_key, key.user_name, key.user_id, key.created_at
                );
            }
        }
        KeyCommand::Revoke { access_key } => {
            if !meta.revoke_access_key(&access_key).await? {
                anyhow::bail!("no active access key {access_key}");
            }
            println!("access key {access_key} revoked");
        }
    }
    Ok(())
}

/// `router space`: a table per bucket, then the cluster's totals and ratios.
/// `router drain NODE [--undo]`: says what the drain will do, and how many
/// replicas the node holds now.
pub async fn drain(meta: &Meta, node: &str, draining: bool) -> anyhow::Result<()> {
    if !meta.set_draining(node, draining).await? {
        anyhow::bail!("no storage node {node} has ever joined this cluster");
    }
    let held = meta.replica_count(node).await?;
    if draining {
        println!(
            "draining {node}: it takes no new replicas; its {held} replicas are copied elsewhere and then removed \
             (`router status` shows the count fall to 0; then the node can go)"
        );
    } else {
        println!("{node} is no longer draining ({held} replicas)");
    }
    Ok(())
}

pub async fn print_space(meta: &Meta) -> anyhow::Result<()> {
    let space = meta.space(true, true).await?;
    println!(
        "{:<40} {:>10} {:>16} {:>16}",
        "bucket", "objects", "current_bytes", "all_versions_bytes"
    );
    for b in &space.buckets {
        println!(
            "{:<40} {:>10} {:>16} {:>16}",
            b.name, b.objects, b.current_bytes, b.all_bytes
        );
    }
    let current = space.current_bytes();
    let ratio = |n: i64| match current {
        0 => "-".to_string(),
        c => format!("{:.2}x", n as f64 / c as f64),
    };
    println!("logical_current_bytes={current}");
    println!(
        "logical_all_versions_bytes={} ({} of current)",
        space.all_bytes(),
        ratio(space.all_bytes())
    );
    println!("chunk_bytes={} ({})", space.chunk_bytes, ratio(space.chunk_bytes));
    println!("unreferenced_chunk_bytes={}", space.unreferenced_bytes);
    println!(
        "replica_bytes={} ({})",
        space.replica_bytes,
        ratio(space.replica_bytes)
    );
    println!(
        "node_disk_bytes={} ({})",
        space.node_disk_bytes,
        ratio(space.node_disk_bytes)
    );
    Ok(())
}
