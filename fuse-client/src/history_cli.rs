//! `bucketfs snapshot|fork|restore|diff` (issue 24): past views of a
//! versioned bucket, made and compared by reference on the router. A moment
//! is an RFC 3339 time (`2026-12-03T10:00:00Z`) or a snapshot's name.

use anyhow::{bail, Context, Result};

use crate::s3::history::Moment;
use crate::Connection;

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub action: SnapshotAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotAction {
    /// Record the moment now as NAME.
    Create {
        bucket: String,
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// List the bucket's snapshots, oldest first: NAME<TAB>TIME.
    List {
        bucket: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete snapshot NAME (its versions may then expire).
    Delete {
        bucket: String,
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, clap::Args)]
pub struct ForkArgs {
    /// BUCKET@TIME or BUCKET@SNAPSHOT.
    pub source: String,
    pub new_bucket: String,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// BUCKET or BUCKET/PREFIX (a directory: end it with /).
    pub target: String,
    /// The moment: a time or a snapshot.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// BUCKET@TIME or BUCKET@SNAPSHOT.
    pub from: String,
    /// BUCKET@TIME or BUCKET@SNAPSHOT; BUCKET (or nothing) for now.
    pub to: Option<String>,
    /// Only keys under this prefix.
    pub prefix: Option<String>,
    /// Print the router's JSON answer instead of `X<TAB>KEY` lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `BUCKET@MOMENT` split; the moment is `None` without an `@`.
fn bucket_at(text: &str) -> (&str, Option<Moment>) {
    match text.split_once('@') {
        Some((bucket, moment)) => (bucket, Some(Moment::parse(moment))),
        None => (text, None),
    }
}

/// Runs `call` with a client of `bucket` on a runtime of its own.
fn with_client<T>(
    connection: &Connection,
    bucket: &str,
    call: impl AsyncFnOnce(&crate::s3::S3) -> Result<T>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s3 = connection.client(bucket, &connection.credentials()?)?;
    runtime.block_on(call(&s3))
}

pub fn snapshot(args: SnapshotArgs) -> Result<()> {
    match &args.action {
        SnapshotAction::Create {
            bucket,
            name,
            connection,
        } => {
            let made = with_client(connection, bucket, async |s3| s3.create_snapshot(name).await)?;
            println!("{}\t{}", made.name, made.at);
        }
        SnapshotAction::List { bucket, connection } => {
            let list = with_client(connection, bucket, async |s3| s3.list_snapshots().await)?;
            for s in list.snapshots {
                println!("{}\t{}", s.name, s.at);
            }
        }
        SnapshotAction::Delete {
            bucket,
            name,
            connection,
        } => {
            with_client(connection, bucket, async |s3| s3.delete_snapshot(name).await)?;
        }
    }
    Ok(())
}

pub fn fork(args: ForkArgs) -> Result<()> {
    let (source, Some(moment)) = bucket_at(&args.source) else {
        bail!("name the moment to fork: BUCKET@TIME or BUCKET@SNAPSHOT");
    };
    let forked = with_client(&args.connection, &args.new_bucket, async |s3| {
        s3.fork_from(source, &moment).await
    })
    .with_context(|| format!("forking {} into {}", args.source, args.new_bucket))?;
    println!("{}\t{} keys\tas of {}", forked.bucket, forked.keys, forked.at);
    Ok(())
}

pub fn restore(args: RestoreArgs) -> Result<()> {
    let (bucket, prefix) = args.target.split_once('/').unwrap_or((&args.target, ""));
    let moment = Moment::parse(&args.to);
    let restored = with_client(&args.connection, bucket, async |s3| {
        s3.restore(prefix, &moment).await
    })?;
    for key in &restored.restored {
        println!("restored\t{key}");
    }
    for key in &restored.deleted {
        println!("deleted\t{key}");
    }
    Ok(())
}

pub fn diff(args: DiffArgs) -> Result<()> {
    let (bucket, Some(from)) = bucket_at(&args.from) else {
        bail!("name the first moment: BUCKET@TIME or BUCKET@SNAPSHOT");
    };
    // A second argument without an `@` that is not the bucket is the prefix.
    let (to, prefix) = match args.to.as_deref().map(bucket_at) {
        Some((b, to)) if b == bucket => (to, args.prefix.clone()),
        Some((_, Some(_))) => bail!("both moments must be of one bucket"),
        Some((prefix, None)) if args.prefix.is_none() => (None, Some(prefix.to_string())),
        Some(_) => bail!("both moments must be of one bucket"),
        None => (None, args.prefix.clone()),
    };
    let prefix = prefix.unwrap_or_default();
    let diff = with_client(&args.connection, bucket, async |s3| {
        s3.diff(&prefix, &from, to.as_ref()).await
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diff)?);
        return Ok(());
    }
    for c in &diff.changes {
        match &c.from {
            Some(from) => println!("{}\t{from}\t{}", c.change.letter(), c.key),
            None => println!("{}\t{}", c.change.letter(), c.key),
        }
    }
    Ok(())
}
