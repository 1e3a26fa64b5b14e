//! The router's time-travel calls (issue 24; the wire in
//! `bucketfs_common::time_travel`), for `bucketfs snapshot|fork|restore|
//! diff` and `mount --at SNAPSHOT`. Each is sent once: a retried fork or
//! snapshot would fail on its own first attempt's result.

use anyhow::bail;
use bucketfs_common::time_travel::{
    Diff, Forked, Restored, Snapshot, Snapshots, DIFF_QUERY, FORK_QUERY, RESTORE_QUERY, SNAPSHOT_QUERY,
};

use super::*;

/// A moment as a command names it: an RFC 3339 time, else a snapshot's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moment {
    At(jiff::Timestamp),
    Snapshot(String),
}

impl Moment {
    pub fn parse(text: &str) -> Self {
        match text.parse() {
            Ok(at) => Moment::At(at),
            Err(_) => Moment::Snapshot(text.to_string()),
        }
    }

    /// The query parameter naming it: `{at}=` or `{snapshot}=`.
    fn param(&self, at: &'static str, snapshot: &'static str) -> (&'static str, String) {
        match self {
            Moment::At(t) => (at, t.to_string()),
            Moment::Snapshot(name) => (snapshot, name.clone()),
        }
    }
}

impl S3 {
    /// Sends an extension call once; its JSON answer, or the router's
    /// error code and message.
    async fn extension<T: serde::de::DeserializeOwned>(&self, mut call: Call<'_>) -> anyhow::Result<T> {
        call.attempts = 1;
        let resp = self.send(call).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let code = xml_field(&text, "Code").unwrap_or_default();
            let message = xml_field(&text, "Message").unwrap_or_default();
            bail!("{status} {code}: {message}");
        }
        serde_json::from_str(&text).with_context(|| format!("the router answered {text:?}"))
    }

    pub async fn create_snapshot(&self, name: &str) -> anyhow::Result<Snapshot> {
        let call = Call::new(Method::POST, None)
            .query(SNAPSHOT_QUERY, "")
            .query("name", name);
        self.extension(call).await
    }

    pub async fn list_snapshots(&self) -> anyhow::Result<Snapshots> {
        self.extension(Call::new(Method::GET, None).query(SNAPSHOT_QUERY, ""))
            .await
    }

    pub async fn delete_snapshot(&self, name: &str) -> anyhow::Result<()> {
        let call = Call::new(Method::DELETE, None)
            .query(SNAPSHOT_QUERY, "")
            .query("name", name);
        self.extension::<serde_json::Value>(call).await.map(|_| ())
    }

    /// Makes this client's bucket, a fork of `source` as of `moment`.
    pub async fn fork_from(&self, source: &str, moment: &Moment) -> anyhow::Result<Forked> {
        let (param, value) = moment.param("at", "snapshot");
        let call = Call::new(Method::POST, None)
            .query(FORK_QUERY, "")
            .query("source", source)
            .query(param, value);
        self.extension(call).await
    }

    pub async fn restore(&self, prefix: &str, moment: &Moment) -> anyhow::Result<Restored> {
        let (param, value) = moment.param("at", "snapshot");
        let call = Call::new(Method::POST, None)
            .query(RESTORE_QUERY, "")
            .query("prefix", prefix)
            .query(param, value);
        self.extension(call).await
    }

    /// The changes under `prefix` from `from` to `to` (now when `None`).
    pub async fn diff(&self, prefix: &str, from: &Moment, to: Option<&Moment>) -> anyhow::Result<Diff> {
        let (param, value) = from.param("from-at", "from-snapshot");
        let mut call = Call::new(Method::GET, None)
            .query(DIFF_QUERY, "")
            .query("prefix", prefix)
            .query(param, value);
        if let Some(to) = to {
            let (param, value) = to.param("to-at", "to-snapshot");
            call = call.query(param, value);
        }
        self.extension(call).await
    }

    /// The snapshots and their times, as the store trait answers them:
    /// none where the call fails (another server answers it otherwise).
    pub(super) async fn snapshot_times(&self) -> Vec<(String, SystemTime)> {
        match self.list_snapshots().await {
            Ok(list) => list
                .snapshots
                .into_iter()
                .filter_map(|s| Some((s.name, SystemTime::from(s.at.parse::<jiff::Timestamp>().ok()?))))
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "no snapshots listed");
                Vec::new()
            }
        }
    }

    /// The time `moment` stands for: itself, or its snapshot's.
    pub async fn moment_time(&self, moment: &Moment) -> anyhow::Result<jiff::Timestamp> {
        match moment {
            Moment::At(at) => Ok(*at),
            Moment::Snapshot(name) => {
                let snapshots = self.list_snapshots().await?;
                let Some(s) = snapshots.snapshots.iter().find(|s| s.name == *name) else {
                    bail!("{name} is neither an RFC 3339 time nor a snapshot of this bucket");
                };
                Ok(s.at.parse()?)
            }
        }
    }
}
