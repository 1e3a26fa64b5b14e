//! `bucketfs-cluster`: starts and stops the local quick-start cluster.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use bucketfs_tests::{tools, Cluster, Ports};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bucketfs-cluster", about = "Local bucketfs cluster on loopback")]
struct Cli {
    /// State directory (pids, logs, data).
    #[arg(long, default_value = ".cluster", global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start Postgres, ZooKeeper, HAProxy, 2 routers and 3 storage nodes and create BUCKET.
    Up {
        #[arg(long, default_value = "demo")]
        bucket: String,
    },
    /// Stop every process of the cluster.
    Down,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Up { bucket } => {
            if cli
                .dir
                .join("pids")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some())
            {
                anyhow::bail!(
                    "{} holds a running cluster; run `make down` first",
                    cli.dir.display()
                );
            }
            let dir = std::path::absolute(&cli.dir)?;
            // The quick start is on loopback: its routers serve the status page.
            let cluster = Cluster::start_in(&dir, Ports::quick_start(), false, &["--status-page"])?;
            let env = format!(
                "export AWS_ENDPOINT_URL={endpoint}\nexport AWS_ACCESS_KEY_ID={}\n\
                 export AWS_SECRET_ACCESS_KEY={}\nexport AWS_DEFAULT_REGION=us-east-1\n\
                 export BUCKETFS_ENDPOINT={endpoint}\n\
                 # HTTPS (HAProxy ends TLS): aws --endpoint-url {https} --ca-bundle {ca} ...\n\
                 export BUCKETFS_HTTPS_ENDPOINT={https}\nexport BUCKETFS_CA_FILE={ca}\n",
                cluster.access_key,
                cluster.secret_key,
                endpoint = cluster.endpoint(),
                https = cluster.https_endpoint(),
                ca = cluster.tls_ca_path().display(),
            );
            fs::write(dir.join("env"), env)?;
            let out = cluster
                .aws(&["s3api", "create-bucket", "--bucket", &bucket])
                .output()?;
            if !out.status.success()
                && !String::from_utf8_lossy(&out.stderr).contains("BucketAlreadyOwnedByYou")
            {
                tools::check(out, "creating the bucket")?;
            }
            println!(
                "cluster up: S3 endpoint {} and {} (bucket {bucket})",
                cluster.endpoint(),
                cluster.https_endpoint()
            );
            println!("credentials: source {}", dir.join("env").display());
            println!(
                "status: http://127.0.0.1:{}/ui, or `router status` (see README)",
                cluster.ports.routers[0]
            );
            cluster.detach();
        }
        Cmd::Down => bucketfs_tests::stop_from_pid_files(&cli.dir)?,
    }
    Ok(())
}
