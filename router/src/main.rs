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
    bucketfs_common::logging::init(default);
    router::main(cli).await
}
