use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bucketfs_common::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    router::main(router::Cli::parse()).await
}
