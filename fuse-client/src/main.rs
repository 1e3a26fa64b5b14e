fn main() -> anyhow::Result<()> {
    bucketfs_common::memory::keep_freed_memory();
    bucketfs_common::logging::init("info");
    bucketfs::run(std::env::args_os().collect())
}
