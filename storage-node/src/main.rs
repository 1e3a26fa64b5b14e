use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bucketfs_common::memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file is read with grep.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    storage_node::run(storage_node::Config::parse()).await
}
