//! One runner for every process's background loops: the router's worker
//! election and membership watch, the node's registration and scrubber, the
//! router's deferred third replicas. Each loop has a name in the logs,
//! backs off while it keeps failing, and ends at shutdown (a termination
//! signal), which waits a little for one-off tasks still running.
//!
//! Loops are cancelled at their next await; a one-off task (a replica
//! being written) is not cancelled, only waited for up to the grace period.
//!
//! A loop cannot die: an attempt or pass that panics is logged as a failure
//! and the loop goes on (an elected worker that panicked runs for leader
//! again once its ZooKeeper session, dropped with it, is gone).

use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first wait after a failed attempt; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An attempt that lasted this long succeeded for a while: the next wait
/// starts again from `FIRST_BACKOFF`.
const HEALTHY: Duration = Duration::from_secs(60);

/// The background loops and tasks of one process.
#[derive(Clone, Default)]
pub struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `attempt` again and again until shutdown (a session that ends
    /// when its connection does: a ZooKeeper registration, a watch). After
    /// each attempt it waits, longer while attempts keep failing quickly.
    pub fn retry<F, Fut, E>(&self, name: &'static str, mut attempt: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: Display + Send,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let outcome = tokio::select! {
                    _ = stop.cancelled() => break,
                    outcome = AssertUnwindSafe(attempt()).catch_unwind() => outcome,
                };
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(task = name, error = %e, retry_in_secs = backoff.as_secs_f64(), "background task failed")
                    }
                    Err(panic) => tracing::error!(
                        task = name,
                        panic = panic_message(&panic),
                        retry_in_secs = backoff.as_secs_f64(),
                        "background task panicked"
                    ),
                }
                if started.elapsed() >= HEALTHY {
                    backoff = FIRST_BACKOFF;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            tracing::debug!(task = name, "background task stopped");
        });
    }

    /// Runs `pass` every `interval` (the first after one interval) until
    /// shutdown.
    pub fn every<F, Fut>(&self, name: &'static str, interval: Duration, mut pass: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    passed = AssertUnwindSafe(pass()).catch_unwind() => {
                        if let Err(panic) = passed {
                            tracing::error!(task = name, panic = panic_message(&panic), "background pass panicked");
                        }
                    }
                }
            }
            tracing::debug!(task = name, "background task stopped");
        });
    }

    /// Runs a one-off task to its end; shutdown waits for it (up to its grace).
    pub fn task(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(fut);
    }

    /// Resolves once shutdown has begun (for a server's graceful stop).
    pub async fn stopping(&self) {
        self.stop.cancelled().await
    }

    /// Ends every loop and waits up to `grace` for the one-off tasks.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                left = self.tasks.len(),
                "background tasks still running at shutdown"
            );
        }
    }
}

/// What a caught panic said, if it said it in words.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a message)")
}

/// How long a process stopping on a signal waits for requests and tasks.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs a server until SIGTERM or SIGINT, then stops the background loops
/// and gives the server's requests and the one-off tasks `SHUTDOWN_GRACE`
/// each. `serve` gets the future that resolves when the server must stop
/// accepting (its graceful shutdown).
pub async fn serve_until_terminated<S, Fut, E>(background: Background, serve: S) -> Result<(), E>
where
    S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let stopping = background.clone();
    tokio::spawn(async move {
        termination().await;
        tracing::info!("termination signal: stopping");
        stopping.shutdown(SHUTDOWN_GRACE).await;
    });
    let stopped = background.clone();
    let server = serve(Box::pin(async move { stopped.stopping().await }));
    tokio::select! {
        served = server => served?,
        _ = async {
            background.stopping().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("requests still running at shutdown"),
    }
    background.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Resolves at SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failing_attempts_back_off_and_shutdown_ends_the_loops() {
        let background = Background::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        background.retry("failing", move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("nope")
            }
        });
        let passes = Arc::new(AtomicU32::new(0));
        let counted = passes.clone();
        background.every("pass", Duration::from_secs(10), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let finished = Arc::new(AtomicU32::new(0));
        let done = finished.clone();
        background.task(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            done.fetch_add(1, Ordering::SeqCst);
        });
        // Waits of 1, 2, 4, 8, 10 s: attempts at 0, 1, 3, 7, 15 and 25 s;
        // passes at 10, 20 and 30 s. 32 s ties with none of them.
        tokio::time::sleep(Duration::from_secs(32)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 6);
        assert_eq!(passes.load(Ordering::SeqCst), 3);
        background.shutdown(Duration::from_secs(5)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        let (a, p) = (attempts.load(Ordering::SeqCst), passes.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(
            (attempts.load(Ordering::SeqCst), passes.load(Ordering::SeqCst)),
            (a, p)
        );
    }

    /// A panicking attempt or pass is one that failed: the loops go on.
    #[tokio::test(start_paused = true)]
    async fn a_panic_does_not_end_a_loop() {
        let background = Background::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        background.retry("panicking", move || {
            let counted = counted.clone();
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("a log write failed");
                }
                Ok::<(), String>(())
            }
        });
        let passes = Arc::new(AtomicU32::new(0));
        let counted = passes.clone();
        background.every("pass", Duration::from_secs(10), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                panic!("every pass panics");
            }
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert!(
            attempts.load(Ordering::SeqCst) >= 4,
            "the loop died after a panic"
        );
        assert_eq!(passes.load(Ordering::SeqCst), 3);
        background.shutdown(Duration::from_secs(1)).await;
    }
}
