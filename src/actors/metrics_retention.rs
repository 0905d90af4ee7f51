//! Host metrics retention (issue 14 §2): minute points older than 24 hours
//! are folded into hourly points, hourly points older than 30 days are
//! dropped — in bounded batches ([`BATCH_HOSTS`] hosts of one hour, or one
//! hour of hourly points, per writer turn; `store::host_metrics::downsample_batch`),
//! each a [`RunWrite`] on the one writer, so agents' writes queue behind at
//! most one small batch. While there is more the next batch follows after
//! [`BUSY_PAUSE`]; once caught up the task looks again after [`IDLE_PAUSE`].

use std::time::Duration;

use actix::Addr;

use super::persistence::{PersistError, Persistence, RunWrite};
use crate::store;

/// Hosts whose hour of minute points one batch folds (60 rows each).
pub const BATCH_HOSTS: i64 = 200;
/// Pause between two batches while work remains.
pub const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// Pause after catching up (or after an error) before looking again.
pub const IDLE_PAUSE: Duration = Duration::from_secs(300);

/// Starts the retention task on the current actix system.
pub fn start(persistence: Addr<Persistence>) {
    actix::spawn(async move {
        let mut folded = 0;
        loop {
            let now = store::now_ms();
            let write = RunWrite::new("host metrics retention", move |conn| {
                store::host_metrics::downsample_batch(conn, now, BATCH_HOSTS)
                    .map_err(PersistError::from)
            });
            let pause = match persistence.send(write).await {
                // The writer is gone: the server is stopping.
                Err(_) => break,
                Ok(Ok(outcome)) if !outcome.done => {
                    folded += outcome.folded;
                    BUSY_PAUSE
                }
                Ok(Ok(_)) => {
                    if folded > 0 {
                        tracing::info!(
                            points = folded,
                            "minute host metrics folded into hourly points"
                        );
                        folded = 0;
                    }
                    IDLE_PAUSE
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "host metrics retention failed; trying again later");
                    IDLE_PAUSE
                }
            };
            tokio::time::sleep(pause).await;
        }
    });
}
