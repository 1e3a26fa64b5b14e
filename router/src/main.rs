use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bucketfs_common::memory::keep_freed_memory();
    let cli = router::Cli::parse();
    // A server logs its work; an admin command prints its answer on stdout
    // and only warnings on stderr.
    let default = match cli.command {
        router::Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file is read with grep.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    router::main(cli).await
}
