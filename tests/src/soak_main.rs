//! `bucketfs-soak`: the fault-injection soak (`make soak DURATION=30m
//! SEED=n`); see `soak.rs`. Exits non-zero if an acknowledged write was
//! lost or the checker found an anomaly.

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bucketfs-soak",
    about = "Writers through S3 and a mount while faults are injected; then every acknowledged write is checked"
)]
struct Cli {
    /// How long the workload runs: seconds, or with a unit (90s, 10m, 1h).
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Seeds the fault schedule and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn seconds(text: &str) -> Result<u64> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().with_context(|| format!("a duration: {text}"))?;
    Ok(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("a duration's unit is s, m or h: {text}"),
    })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let report = bucketfs_tests::soak::run(seconds(&cli.duration)?, cli.seed, |line| println!("{line}"))?;
    print!("{report}");
    if !report.ok() {
        bail!("the soak found lost writes or anomalies");
    }
    Ok(())
}
