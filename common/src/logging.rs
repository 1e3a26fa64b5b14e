//! Every process's log output: lines to stderr, coloured only on a terminal.
//! A line that cannot be written (stderr a closed pipe, or a file on a full
//! disk) is dropped and counted, never a panic: tracing-subscriber's own
//! report of a failed write goes through `eprintln!`, which panics there,
//! and a panic in a log call once killed a router's background worker.

use std::io::{self, IsTerminal, Write};
use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Log lines dropped because stderr could not take them.
static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Stderr, dropping (and counting) what it cannot write.
struct DropOnError;

impl Write for DropOnError {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().write_all(buf).is_err() {
            DROPPED.inc();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Logs at `RUST_LOG`'s levels, else at `default` (`info`, say).
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()),
        )
        .with_writer(|| DropOnError)
        .with_ansi(io::stderr().is_terminal())
        .log_internal_errors(false)
        .init();
}

/// Registers the count of dropped lines as `bucketfs_log_lines_dropped`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "bucketfs_log_lines_dropped",
        "Log lines dropped because stderr could not take them (a closed pipe, a full disk)",
        DROPPED.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes go on, answered whole, after stderr is a pipe nobody reads.
    #[test]
    fn a_closed_stderr_drops_lines_without_a_panic() {
        let (read, write) = nix::unistd::pipe().expect("a pipe");
        drop(read);
        let saved = nix::unistd::dup(io::stderr()).expect("a copy of stderr");
        nix::unistd::dup2_stderr(&write).expect("stderr to the pipe");
        let written = DropOnError.write(b"a line nobody reads\n");
        nix::unistd::dup2_stderr(&saved).expect("stderr back");
        assert_eq!(written.expect("answered whole"), 20);
        assert!(DROPPED.get() >= 1);
    }
}
