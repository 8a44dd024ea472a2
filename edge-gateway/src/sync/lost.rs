//! What the cloud lost: after its database was restored to an earlier point in time, or a standby
//! promoted that had not received the last commits (bulk data replicates asynchronously), the cloud
//! no longer holds some mutations it had acknowledged, and the feed positions the gateway had read
//! may be given again to new changes.
//!
//! PostgreSQL starts a new timeline in both cases, and every feed page carries the cloud's
//! ([`labedge_schema::sync::FeedPage::timeline`]). When it differs from the one the gateway saw
//! last, the gateway, before it applies anything more:
//! 1. asks the cloud which of the entries it sent in the last [`CHECK_DAYS`] days it holds
//!    (`POST /v1/labs/{lab}/mutations/known`, [`MAX_KNOWN_IDS`] at a time) and queues the others
//!    again: the relay sends them as if never sent, the cloud applies them once;
//! 2. moves its feed checkpoint back to the cloud's head, if it was beyond it;
//! 3. reconciles its tables against the cloud's at once rather than at night. The records queued
//!    again are pending, so the reconciliation leaves them alone until the cloud has them back.
//!
//! A new timeline without loss (a clean switchover) costs one look-up per thousand entries and a
//! reconciliation that finds nothing.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use labedge_protocol::relay::{KnownMutations, MAX_KNOWN_IDS, MutationIds};
use labedge_schema::edge::schema::outbox;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::upstream::Upstreams;
use super::worker::SyncError;
use crate::state::AppState;

/// How far back a new timeline is checked: a restore further back than this is not one the lab
/// would make without resetting its gateways.
pub const CHECK_DAYS: i64 = 7;

/// Outcomes of entries the cloud applied (its verdict on a conflict or a rejection is the lab
/// admin's to handle, and is not sent again).
const APPLIED: [&str; 2] = ["applied", "duplicate"];

/// Queues again every entry sent in the last `days` days with an applied outcome that the cloud no
/// longer holds; answers how many.
pub async fn resend_lost(state: &AppState, upstreams: &Upstreams, days: i64) -> Result<usize, SyncError> {
    let path = format!("/v1/labs/{}/mutations/known", state.config.lab);
    let since = OffsetDateTime::now_utc() - Duration::days(days);
    let limit = i64::try_from(MAX_KNOWN_IDS).unwrap_or(1_000);
    let (mut after, mut queued) = (0_i64, 0_usize);
    loop {
        let mut conn = state.pool.get().await?;
        let sent: Vec<(i64, Uuid)> = outbox::table
            .filter(outbox::seq.gt(after))
            .filter(outbox::sent_at.ge(since))
            .filter(outbox::outcome.eq_any(APPLIED))
            .order(outbox::seq)
            .limit(limit)
            .select((outbox::seq, outbox::mutation_id))
            .load(&mut conn)
            .await?;
        drop(conn);
        let Some(&(last, _)) = sent.last() else {
            break;
        };
        after = last;
        let ids = MutationIds {
            ids: sent.iter().map(|(_, id)| *id).collect(),
        };
        let (answer, _) = upstreams.post::<_, KnownMutations>(&path, &ids).await?;
        let known: HashSet<Uuid> = answer.known.into_iter().collect();
        let lost: Vec<i64> = sent
            .iter()
            .filter(|(_, id)| !known.contains(id))
            .map(|(seq, _)| *seq)
            .collect();
        if !lost.is_empty() {
            let mut conn = state.pool.get().await?;
            queued += diesel::update(outbox::table.filter(outbox::seq.eq_any(&lost)))
                .filter(outbox::outcome.eq_any(APPLIED))
                .set((
                    outbox::sent_at.eq(None::<OffsetDateTime>),
                    outbox::outcome.eq(None::<String>),
                    outbox::upstream.eq(None::<String>),
                    outbox::attempts.eq(0),
                    outbox::last_error.eq("sent again: the cloud no longer held it"),
                ))
                .execute(&mut conn)
                .await?;
        }
        if sent.len() < MAX_KNOWN_IDS {
            break;
        }
    }
    if queued > 0 {
        metrics::counter!("labedge_relay_resent_total").increment(queued as u64);
        state.relay_wakeup.notify_one();
    }
    Ok(queued)
}
