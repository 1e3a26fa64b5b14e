//! Model-based tests of the filesystem core, in the style of mountpoint-s3's
//! reftests: random sequences of POSIX operations go to `Fs` over the
//! in-memory store and to a plain reference model (`model/reference.rs`),
//! and their results, attributes, contents and listings are compared after
//! every step. A remount is a fresh `Fs` over the same store.
//!
//! Sequences come from seeds; a failure prints its seed and the operations
//! so far. `BUCKETFS_MODEL_SEED=N` replays one seed, `BUCKETFS_MODEL_CASES=N`
//! runs more or fewer. The fault variant (`faults.rs`) injects store errors
//! and checks that nothing acknowledged is lost.

mod crash;
mod driver;
mod faults;
mod races;
mod reference;
mod rng;
mod two_mounts;

use driver::{Harness, Settings};
use rng::Rng;

/// Sequences per `make test` run: the plain model, and the fault variant.
const CASES: u64 = 5_000;
const FAULT_CASES: u64 = 2_000;
/// Operations per sequence.
const STEPS: usize = 40;

fn seeds(base: u64, cases: u64) -> Vec<u64> {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    match env("BUCKETFS_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("BUCKETFS_MODEL_CASES").unwrap_or(cases))
            .map(|i| base + i)
            .collect(),
    }
}

/// Runs `case` for every seed on one paused-clock runtime (write-back
/// delays and retry backoffs pass at once), and reports the first failure.
fn run_all(base: u64, cases: u64, case: impl Fn(u64) -> Result<(), String>) {
    // RUST_LOG=warn shows what the core logged while replaying a seed.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mut failures = Vec::new();
    for seed in seeds(base, cases) {
        if let Err(report) = case(seed) {
            failures.push(format!("seed {seed}:\n{report}"));
            if failures.len() == 3 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

#[test]
fn random_operations_match_the_model() {
    run_all(1, CASES, |seed| {
        let mut rng = Rng::new(seed);
        let settings = Settings::random(&mut rng);
        runtime().block_on(async {
            let mut harness = Harness::new(settings);
            let result = harness.run(&mut rng, STEPS).await;
            harness.finish(result)
        })
    });
}

#[test]
fn injected_store_faults_lose_nothing_acknowledged() {
    run_all(1_000_001, FAULT_CASES, |seed| {
        let mut rng = Rng::new(seed);
        let settings = Settings::random(&mut rng);
        runtime().block_on(async { faults::run(settings, seed, &mut rng, STEPS).await })
    });
}

#[test]
fn rmdir_beside_a_landing_commit_is_refused() {
    runtime().block_on(races::rmdir_beside_a_landing_commit_is_refused());
}

#[test]
fn a_directory_rename_under_a_streaming_upload_commits_under_the_new_name() {
    runtime().block_on(races::a_directory_rename_under_a_streaming_upload_commits_under_the_new_name());
}

#[test]
fn locks_order_two_mounts_and_show_the_holders_writes() {
    runtime().block_on(two_mounts::locks_order_two_mounts_and_show_the_holders_writes());
}

#[test]
fn a_name_leaving_its_link_group_is_its_own_file_though_the_group_is_open() {
    runtime().block_on(races::a_name_leaving_its_link_group_is_its_own_file_though_the_group_is_open());
}

#[test]
fn a_late_listing_brings_back_nothing_changed_since_it_was_sent() {
    runtime().block_on(races::a_late_listing_brings_back_nothing_changed_since_it_was_sent());
}
