//! One id per S3 request, carried from the router to the storage nodes so
//! that both log it: the router makes it (and returns it to the client as
//! `x-amz-request-id`), runs the request's work inside [`scope`], and the
//! chunk client puts [`current`] in [`HEADER`] of every node request made
//! from that work. Tasks the work spawns take the id along with
//! [`inherit`]; a task-local does not cross `tokio::spawn` by itself.

use std::future::Future;

/// The header a node request carries its S3 request's id in.
pub const HEADER: &str = "x-bucketfs-request-id";

/// The longest id a node accepts from the header and logs; ids the router
/// makes are 16 hex digits.
pub const MAX_LEN: usize = 64;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A fresh id: 16 hex digits.
pub fn generate() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs `work` as part of request `id`.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request this task works for, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `work`, run as part of the current request (if any): for a future about
/// to be spawned.
pub fn inherit<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let id = current();
    async move {
        match id {
            Some(id) => REQUEST_ID.scope(id, work).await,
            None => work.await,
        }
    }
}

/// Whether `value` is an id a node may log: short, and only the characters
/// of ids routers make (and of the `-` a caller may add), so a peer cannot
/// write arbitrary text into a log line.
pub fn is_loggable(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_reaches_spawned_work_only_when_inherited() {
        assert_eq!(current(), None);
        scope("abc".into(), async {
            assert_eq!(current().as_deref(), Some("abc"));
            let inherited = tokio::spawn(inherit(async { current() }));
            let bare = tokio::spawn(async { current() });
            assert_eq!(inherited.await.unwrap().as_deref(), Some("abc"));
            assert_eq!(bare.await.unwrap(), None);
        })
        .await;
        assert_eq!(current(), None);
    }

    #[test]
    fn only_short_plain_ids_are_logged() {
        assert!(is_loggable(&generate()));
        assert!(is_loggable("a-1"));
        assert!(!is_loggable(""));
        assert!(!is_loggable("a b"));
        assert!(!is_loggable("a\nforged log line"));
        assert!(!is_loggable(&"a".repeat(MAX_LEN + 1)));
    }
}
