//! Rebalance: the elected worker evens out the bytes of replicas the nodes
//! hold (a node that joins starts empty: new chunks use it at once, old ones
//! would never move). Each step moves replicas from the node holding the
//! most to the one holding the least, of chunks the second lacks: a verified
//! copy is made durable and recorded on the receiver before the donor's row
//! and file go (`ChunkIo::move_replica`), so a chunk never has fewer copies
//! and reads never fail. Draining nodes are neither donors nor receivers
//! here (repair and trim empty them). Progress is in Postgres, so a new
//! leader simply carries on; throttled like repair.

use std::time::{Duration, Instant};

use crate::chunks::ChunkIo;
use crate::error::Result;
use crate::meta::Meta;
use crate::metrics::Metrics;
use crate::quorum::REPLICAS;

/// Balanced: the fullest and the emptiest node differ by at most this share
/// of the mean.
const SLACK: f64 = 0.05;

/// Moves up to `limit` replicas towards balance; answers how many moved.
pub async fn pass(meta: &Meta, io: &ChunkIo, metrics: &Metrics, throttle: f64, limit: i64) -> Result<u64> {
    let nodes = io.membership().placement_ids();
    if nodes.len() <= REPLICAS {
        // Every node holds a replica of every chunk: nothing can move.
        metrics.rebalance_spread_bytes.set(0);
        return Ok(0);
    }
    let mut moved = 0u64;
    while (moved as i64) < limit {
        let bytes = meta.replica_bytes(&nodes).await?;
        let total: i64 = bytes.iter().map(|(_, b)| b).sum();
        let mean = total as f64 / bytes.len() as f64;
        let (Some((donor, most)), Some((receiver, least))) = (
            bytes.iter().max_by_key(|(_, b)| *b),
            bytes.iter().min_by_key(|(_, b)| *b),
        ) else {
            return Ok(moved);
        };
        metrics.rebalance_spread_bytes.set(most - least);
        if (most - least) as f64 <= mean * SLACK {
            return Ok(moved);
        }
        let want = (*most as f64 - mean).min(mean - *least as f64);
        let chunks = meta.movable_chunks(donor, receiver, limit - moved as i64).await?;
        if chunks.is_empty() {
            return Ok(moved);
        }
        let mut shifted = 0.0;
        for chunk in chunks {
            if shifted >= want {
                break;
            }
            let started = Instant::now();
            match io.move_replica(&chunk, donor, receiver).await {
                Ok(()) => {
                    shifted += f64::from(chunk.size);
                    moved += 1;
                    metrics.replicas_moved.inc();
                }
                Err(e) => {
                    tracing::warn!(chunk = %chunk.id, %donor, %receiver, error = %e, "rebalance move failed");
                    return Ok(moved);
                }
            }
            let pause = started.elapsed().mul_f64(throttle.max(0.0));
            tokio::time::sleep(pause.min(Duration::from_secs(10))).await;
        }
        tracing::info!(%donor, %receiver, bytes = shifted, "rebalanced replicas");
    }
    Ok(moved)
}
