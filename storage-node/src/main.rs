use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bucketfs_common::memory::keep_freed_memory();
    bucketfs_common::logging::init("info");
    storage_node::run(storage_node::Config::parse()).await
}
