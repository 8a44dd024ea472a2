//! Change-feed pages: `change_log` entries after a position, each turned into the row's current state
//! in the lab's scope, or its removal.

use std::collections::{HashMap, HashSet};

use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_schema::sync::{Entity, FeedChange, FeedPage, Record};

use super::records::{self, Selection};
use super::scope::Scope;

#[derive(diesel::QueryableByName)]
struct Head {
    #[diesel(sql_type = BigInt)]
    position: i64,
}

/// The newest committed position (0 before the first change). Positions are taken at commit time
/// under a lock held until the commit ends (see the `change_feed` migration), so every position up to
/// this one that will ever exist is already visible to whoever reads it.
pub async fn head(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
    let head: Head = diesel::sql_query("SELECT coalesce(max(position), 0)::bigint AS position FROM change_log")
        .get_result(conn)
        .await?;
    Ok(head.position)
}

#[derive(diesel::QueryableByName)]
struct Timeline {
    #[diesel(sql_type = BigInt)]
    timeline: i64,
}

/// The database's timeline ([`FeedPage::timeline`]): the current WAL's on a primary (a promotion or
/// a restore to a point in time starts a new one at once), the last restartpoint's on a standby.
pub async fn timeline(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i64> {
    let row: Timeline = diesel::sql_query(
        "SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::bigint \
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::bigint END AS timeline",
    )
    .get_result(conn)
    .await?;
    Ok(row.timeline)
}

#[derive(diesel::QueryableByName)]
struct LogRow {
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = Text)]
    entity: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
}

/// Reads the entries of the lab's feed after `after`, at most `limit + 1` (the extra one only tells
/// whether more wait). Three ordered branches, each served by an index: the lab's own entries, the
/// entries of every lab (catalog, patients), and the entries of another lab's prescriptions that an
/// appointment of this lab refers to.
async fn entries(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    after: i64,
    limit: i64,
) -> diesel::QueryResult<Vec<LogRow>> {
    let sql = format!(
        "SELECT position, entity, entity_id FROM ( \
           (SELECT position, entity, entity_id FROM change_log \
             WHERE lab_id = $1 AND position > $2 ORDER BY position LIMIT $3) \
           UNION ALL \
           (SELECT position, entity, entity_id FROM change_log \
             WHERE lab_id IS NULL AND position > $2 ORDER BY position LIMIT $3) \
           UNION ALL \
           (SELECT position, entity, entity_id FROM change_log \
             WHERE entity = 'prescription' AND lab_id <> $1 AND position > $2 \
               AND entity_id IN ({foreign}) ORDER BY position LIMIT $3) \
         ) c ORDER BY position LIMIT $3",
        foreign = scope.foreign_prescriptions_sql()
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(scope.lab_id)
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit + 1)
        .load(conn)
        .await
}

type Current = HashMap<(Entity, String), Record>;

/// One page of the feed of `lab_code` (whose scope is `scope`) after `after`. Run it inside one
/// `REPEATABLE READ` transaction (as [`crate::feed::read_changes`] does), so that the rows are those
/// of the same snapshot as the positions.
///
/// Each entry becomes the row's current state when it exists and is in scope, else a removal. An
/// appointment sent brings its patient and prescription (and the prescription's patient), a
/// prescription its patient, at the same position: they may have just entered the scope without a
/// change of their own. When a row appears several times in the page only its last occurrence is
/// kept: all occurrences carry the same state.
///
/// `next` is the position of the last entry read while more wait (`has_more`). On the last page it
/// is the head: every position up to the head is committed and was in this snapshot, so none of the
/// lab's entries can still appear below it. A quiet lab's gateway thus keeps up with the head (its
/// lag, `head − next`, is 0) instead of staying at its own last change while other labs write.
pub async fn page(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    lab_code: &str,
    after: i64,
    limit: i64,
) -> diesel::QueryResult<FeedPage> {
    let mut rows = entries(conn, scope, after, limit).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let last_read = rows.last().map_or(after, |r| r.position);
    let rows: Vec<(i64, Entity, String)> = rows
        .into_iter()
        .filter_map(|r| Entity::parse(&r.entity).map(|e| (r.position, e, r.entity_id)))
        .collect();
    let current = current_rows(conn, scope, &rows).await?;

    let mut changes = Vec::with_capacity(rows.len());
    for (position, entity, key) in &rows {
        match current.get(&(*entity, key.clone())) {
            Some(record) => emit(*position, record, &current, &mut changes),
            None => changes.push(FeedChange {
                position: *position,
                entity: *entity,
                key: key.clone(),
                record: None,
            }),
        }
    }
    let head = head(conn).await?;
    // Never backwards, even for a gateway that claims a position beyond the head.
    let next = if has_more { last_read } else { head.max(last_read) };
    Ok(FeedPage {
        lab: lab_code.to_owned(),
        after,
        next,
        has_more,
        head,
        window_ends: Some(scope.window.to),
        timeline: Some(timeline(conn).await?),
        changes: keep_last(changes),
    })
}

/// Pushes the rows that travel with `record` (recursively: an appointment's prescription brings its
/// own patient), then `record`, all at `position`.
fn emit(position: i64, record: &Record, current: &Current, changes: &mut Vec<FeedChange>) {
    for related in related_keys(record) {
        if let Some(related) = current.get(&related) {
            emit(position, related, current, changes);
        }
    }
    changes.push(FeedChange {
        position,
        entity: record.entity(),
        key: record.key(),
        record: Some(record.clone()),
    });
}

/// The rows sent with `record`, in the order a gateway would insert them.
fn related_keys(record: &Record) -> Vec<(Entity, String)> {
    match record {
        Record::Appointment(a) => {
            let mut keys = vec![(Entity::Patient, a.patient_id.to_string())];
            if let Some(prescription) = a.prescription_id {
                keys.push((Entity::Prescription, prescription.to_string()));
            }
            keys
        }
        Record::Prescription(p) => vec![(Entity::Patient, p.prescription.patient_id.to_string())],
        _ => Vec::new(),
    }
}

/// The current in-scope rows the entries name, and the rows that travel with them.
async fn current_rows(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    rows: &[(i64, Entity, String)],
) -> diesel::QueryResult<Current> {
    let mut wanted: HashMap<Entity, HashSet<String>> = HashMap::new();
    for (_, entity, key) in rows {
        wanted.entry(*entity).or_default().insert(key.clone());
    }
    let mut current = Current::new();
    // Appointments first, then prescriptions, then patients: each adds the next one's keys.
    for entity in [
        Entity::Lab,
        Entity::Staff,
        Entity::TubeType,
        Entity::Exam,
        Entity::Appointment,
        Entity::Prescription,
        Entity::Patient,
    ] {
        let Some(keys) = wanted.remove(&entity) else {
            continue;
        };
        let keys: Vec<String> = keys.into_iter().collect();
        for record in records::load(conn, scope, entity, Selection::Keys(&keys)).await? {
            for (related, key) in related_keys(&record) {
                wanted.entry(related).or_default().insert(key);
            }
            current.insert((entity, record.key()), record);
        }
    }
    // A prescription brought by an appointment brings its patient: loaded above, since patients
    // come last.
    Ok(current)
}

/// Keeps the last occurrence of each row.
fn keep_last(changes: Vec<FeedChange>) -> Vec<FeedChange> {
    let mut seen = HashSet::new();
    let mut kept: Vec<FeedChange> = changes
        .into_iter()
        .rev()
        .filter(|c| seen.insert((c.entity, c.key.clone())))
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(position: i64, key: &str) -> FeedChange {
        FeedChange {
            position,
            entity: Entity::Patient,
            key: key.into(),
            record: None,
        }
    }

    #[test]
    fn the_last_occurrence_of_a_row_is_kept_in_order() {
        let kept = keep_last(vec![removal(1, "a"), removal(2, "b"), removal(3, "a"), removal(3, "c")]);
        let positions: Vec<(i64, &str)> = kept.iter().map(|c| (c.position, c.key.as_str())).collect();
        assert_eq!(positions, vec![(2, "b"), (3, "a"), (3, "c")]);
    }
}
