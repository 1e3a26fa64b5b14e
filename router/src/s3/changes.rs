//! The change feed (`bucketfs_common::extension::CHANGES_QUERY`): a
//! bucket's changes after a sequence number, long-polled.
//!
//! Sequence numbers are handed out when a change is recorded, not when its
//! transaction commits, so a lower one can become visible after a higher
//! one. `next` therefore stops below a gap until the gap fills or is older
//! than `GAP_SECS` (a rolled-back transaction's number never fills); the
//! changes past it are sent at once and again later, which costs a mount a
//! second invalidation, never a missed one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use s3s::{Body, S3Request, S3Response, S3Result};

use bucketfs_common::extension::{ChangeEntry, ChangePage, CHANGES_NOW_QUERY, CHANGES_WAIT_SECS};

use super::wire::{bucket_of_path, json_response};
use super::Bucketfs;
use crate::access::{Action, Caller};
use crate::error::Error;
use crate::meta::Change;

/// How long a gap in the sequence may stay open before the feed moves past.
const GAP_SECS: f64 = 5.0;
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(50);
/// How long changes are kept; a mount further behind starts over.
const KEEP_SECS: f64 = 600.0;
/// Changes per page.
const PAGE: i64 = 1000;

/// When this router last trimmed the feed (seconds since the epoch).
static TRIMMED: AtomicU64 = AtomicU64::new(0);

/// Where a follower at `after` may go next, given the changes after it.
fn next_after(after: i64, changes: &[Change]) -> i64 {
    let mut next = after;
    for c in changes {
        if c.seq != next + 1 && c.age_secs < GAP_SECS {
            break;
        }
        next = c.seq;
    }
    next
}

impl Bucketfs {
    pub(super) async fn changes(&self, caller: &Caller, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = bucket_of_path(&req.uri, "changes")?;
        let query = req.uri.query().unwrap_or("");
        let now = query
            .split('&')
            .any(|p| p.split('=').next() == Some(CHANGES_NOW_QUERY));
        let after: Option<i64> = query
            .split('&')
            .find_map(|p| p.strip_prefix("after="))
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::InvalidArgument("changes: after must be a number".into()))
            })
            .transpose()?;
        let bucket = self.meta.bucket(bucket).await?;
        let list = Action::of("ListObjectsV2", false, &http::Method::GET);
        self.authorize(caller, list, &bucket, None, None).await?;
        self.trim_changes().await;
        let (oldest, newest) = self.meta.change_bounds().await?;
        let Some(after) = after else {
            return Ok(page(ChangePage {
                next: newest.max(0) as u64,
                ..ChangePage::default()
            }));
        };
        let reset = after + 1 < oldest;
        let wait = if now { 0 } else { CHANGES_WAIT_SECS };
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let changes = self.meta.changes_after(&bucket, after, PAGE).await?;
            if !changes.is_empty() || reset || Instant::now() >= deadline {
                let next = next_after(after, &changes);
                let changes = changes
                    .into_iter()
                    .map(|c| ChangeEntry {
                        seq: c.seq as u64,
                        key: c.key,
                        etag: c.etag,
                    })
                    .collect();
                return Ok(page(ChangePage {
                    changes,
                    next: next.max(0) as u64,
                    reset,
                }));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Drops old changes, at most once a minute per router.
    async fn trim_changes(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = TRIMMED.load(Ordering::Relaxed);
        if now < last + 60
            || TRIMMED
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.meta.trim_changes(KEEP_SECS).await {
            tracing::warn!(error = %e, "could not trim the change feed");
        }
    }
}

fn page(page: ChangePage) -> S3Response<Body> {
    json_response(serde_json::to_string(&page).expect("a page serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, age_secs: f64) -> Change {
        Change {
            seq,
            key: String::new(),
            etag: None,
            age_secs,
        }
    }

    #[test]
    fn next_stops_below_a_young_gap_and_passes_an_old_one() {
        assert_eq!(next_after(4, &[]), 4);
        assert_eq!(next_after(4, &[change(5, 0.0), change(6, 0.0)]), 6);
        assert_eq!(next_after(4, &[change(5, 0.0), change(7, 0.0)]), 5);
        assert_eq!(
            next_after(4, &[change(5, 0.0), change(7, 9.0), change(8, 0.0)]),
            8
        );
    }
}
