//! Audit.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_patient_data_is_audited_cache_hits_included() {
    let gw = TestGateway::start().await;
    let data = round_data(&gw, 3).await;
    let (device, token) = sampler(&gw).await;
    let me = gw.staff_id(HOME_SAMPLER.0);
    let who = data.patients[0].id;
    let rx = data.visits[0].prescription_id.unwrap();
    let with_request_id = |path: String, id: &str| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("x-request-id", id.to_owned()))
    };
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT, who),
            "0190c3a2-0000-7000-8000-000000000001",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT, who),
            "0190c3a2-0000-7000-8000-000000000002",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PRESCRIPTION, rx),
            "0190c3a2-0000-7000-8000-000000000003",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            with_id(routes::PATIENT_PRESCRIPTIONS, who),
            "0190c3a2-0000-7000-8000-000000000004",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            search("visite"),
            "0190c3a2-0000-7000-8000-000000000005",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            format!("{}?date={}", routes::ROUNDS, data.today),
            "0190c3a2-0000-7000-8000-000000000006",
        ))
        .await
        .expect(200);
    gw.app
        .send(with_request_id(
            format!("{}?date={}", routes::APPOINTMENTS, data.today),
            "0190c3a2-0000-7000-8000-000000000007",
        ))
        .await
        .expect(200);
    // Refused reads read nothing: no audit row.
    get(&gw, &with_id(routes::PATIENT, Uuid::now_v7()), &token)
        .await
        .expect(404);

    let rows = audit_rows(&gw).await;
    assert!(
        rows.iter()
            .all(|r| r.staff_id == Some(me) && r.device_id == Some(device))
    );
    let of = |request: &str| -> Vec<(&str, Option<Uuid>, Option<&str>)> {
        rows.iter()
            .filter(|r| r.request_id.as_deref() == Some(request))
            .map(|r| (r.action.as_str(), r.patient_id, r.resource.as_deref()))
            .collect()
    };
    let patient_resource = format!("patient:{who}");
    for request in [
        "0190c3a2-0000-7000-8000-000000000001",
        "0190c3a2-0000-7000-8000-000000000002",
    ] {
        assert_eq!(
            of(request),
            [("patient.read", Some(who), Some(patient_resource.as_str()))],
            "{request}"
        );
    }
    let rx_resource = format!("prescription:{rx}");
    assert_eq!(
        of("0190c3a2-0000-7000-8000-000000000003"),
        [("prescription.read", Some(who), Some(rx_resource.as_str()))]
    );
    assert_eq!(of("0190c3a2-0000-7000-8000-000000000004")[0].0, "prescription.list");
    let search_rows = of("0190c3a2-0000-7000-8000-000000000005");
    assert_eq!(search_rows.len(), 3, "one row per patient of the page");
    assert!(search_rows.iter().all(|r| r.0 == "patient.search"));
    let round_rows = of("0190c3a2-0000-7000-8000-000000000006");
    assert_eq!(round_rows.len(), 3, "one row per visit");
    for (row, visit) in round_rows.iter().zip(&data.visits) {
        assert_eq!(row.0, "round.read");
        assert_eq!(row.1, Some(visit.patient_id));
        assert_eq!(row.2, Some(format!("appointment:{}", visit.id).as_str()));
    }
    assert_eq!(of("0190c3a2-0000-7000-8000-000000000007").len(), 3);
    assert!(
        of("0190c3a2-0000-7000-8000-000000000007")
            .iter()
            .all(|r| r.0 == "appointments.read")
    );
    assert_eq!(rows.len(), 2 + 1 + 1 + 3 + 3 + 3);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_reads_share_few_audit_commits() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    // Warm the cache: the reads below are the lean path (Redis hit, audit).
    let ids: Vec<Uuid> = people.martins.iter().map(|p| p.id).collect();
    for id in &ids {
        get(&gw, &with_id(routes::PATIENT, *id), &token).await.expect(200);
    }
    // The lean path, one read at a time: figures only (in process, any build).
    let mut times = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        get(&gw, &with_id(routes::PATIENT, ids[i % ids.len()]), &token)
            .await
            .expect(200);
        times.push(started.elapsed());
    }
    times.sort();
    eprintln!("cached patient read: median {:?}, p90 {:?}", times[50], times[90]);
    let before = audit_rows(&gw).await.len();
    let reads = 60;
    let paths: Vec<String> = (0..reads)
        .map(|i| with_id(routes::PATIENT, ids[i % ids.len()]))
        .collect();
    let answers = join_all(paths.iter().map(|path| get(&gw, path, &token)).collect()).await;
    assert!(answers.iter().all(|a| a.status.as_u16() == 200));
    assert_eq!(audit_rows(&gw).await.len(), before + reads, "every read audited");
    // Rows written by one transaction share its id (`xmin`; no row is ever rewritten): count the
    // commits by it.
    let commits: Count = diesel::sql_query(format!(
        "SELECT count(DISTINCT x)::bigint AS n FROM (SELECT xmin::text AS x FROM audit_log ORDER BY seq OFFSET {before}) AS r"
    ))
    .get_result(&mut gw.db.conn().await)
    .await
    .unwrap();
    eprintln!("{reads} concurrent reads, {} audit commits", commits.n);
    // How many share a commit depends on scheduling: 2–3 commits on a quiet machine, up to 24 seen
    // with the whole suite running on 2 cores. Sharing is what is asserted: at least two reads a
    // commit on average, where one commit per read would be 60.
    assert!(
        commits.n * 2 <= reads as i64,
        "{reads} reads took {} commits",
        commits.n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_audit_cannot_be_written_answers_503() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let path = with_id(routes::PATIENT, people.lefevre.id);
    get(&gw, &path, &token).await.expect(200);
    gw.db
        .conn()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$; \
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
        )
        .await
        .unwrap();
    let refused = get(&gw, &path, &token).await.expect(503);
    assert_eq!(refused.problem().code, ErrorCode::ServiceUnavailable);
    assert!(refused.header("retry-after").is_some());
    assert!(!refused.text().contains("Lefèvre"));
    gw.db
        .conn()
        .await
        .batch_execute("DROP TRIGGER refuse_audit ON audit_log")
        .await
        .unwrap();
    get(&gw, &path, &token).await.expect(200);
}

/// A chained row, its `prev_hash` and its `hash`.
type Chained = (AuditRecord, Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Queryable)]
struct StoredAudit {
    seq: i64,
    chain_seq: Option<i64>,
    at: time::OffsetDateTime,
    lab_id: Uuid,
    staff_id: Option<Uuid>,
    device_id: Option<Uuid>,
    action: String,
    patient_id: Option<Uuid>,
    resource: Option<String>,
    request_id: Option<String>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_appends_audit_rows_chained_with_hashes_that_recompute() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    for p in people.martins.iter().take(4) {
        get(&gw, &with_id(routes::PATIENT, p.id), &token).await.expect(200);
    }
    names(&gw, "martin", &token).await;
    let expected = 4 + 7;
    let started = Instant::now();
    let rows: Vec<Chained> = loop {
        let rows: Vec<StoredAudit> = audit_log::table
            .order(audit_log::seq)
            .select((
                audit_log::seq,
                audit_log::chain_seq,
                audit_log::at,
                audit_log::lab_id,
                audit_log::staff_id,
                audit_log::device_id,
                audit_log::action,
                audit_log::patient_id,
                audit_log::resource,
                audit_log::request_id,
                audit_log::prev_hash,
                audit_log::hash,
            ))
            .load(&mut gw.db.conn().await)
            .await
            .unwrap();
        // Every row is chained as it is inserted (a read is answered after its row's commit).
        assert!(rows.iter().all(|r| r.chain_seq.is_some()), "an unchained row");
        if rows.len() == expected {
            break rows
                .into_iter()
                .map(|r| {
                    let record = AuditRecord {
                        seq: r.seq,
                        chain_seq: r.chain_seq.unwrap(),
                        at: r.at,
                        lab_id: r.lab_id,
                        staff_id: r.staff_id,
                        device_id: r.device_id,
                        action: r.action,
                        patient_id: r.patient_id,
                        resource: r.resource,
                        request_id: r.request_id,
                    };
                    (record, r.prev_hash, r.hash)
                })
                .collect();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "rows not chained in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut rows = rows;
    rows.sort_by_key(|r| r.0.chain_seq);
    let mut prev = GENESIS_HASH.to_vec();
    for (i, (record, prev_hash, hash)) in rows.iter().enumerate() {
        assert_eq!(record.chain_seq, i64::try_from(i).unwrap() + 1, "no gaps");
        assert_eq!(
            prev_hash.as_deref(),
            Some(prev.as_slice()),
            "linked to the previous row"
        );
        let recomputed = record_hash(&prev, record);
        assert_eq!(hash.as_deref(), Some(recomputed.as_slice()), "the hash recomputes");
        prev = recomputed.to_vec();
    }
    assert_eq!(
        verify_chain(&mut gw.db.conn().await).await.unwrap(),
        Ok(expected as u64)
    );

    // The log refuses changes; a row changed behind the trigger's back breaks the chain.
    let mut conn = gw.db.conn().await;
    let refused = conn
        .batch_execute("UPDATE audit_log SET action = 'nothing' WHERE chain_seq = 3")
        .await;
    assert!(refused.is_err(), "append-only");
    conn.batch_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
         UPDATE audit_log SET patient_id = NULL WHERE chain_seq = 3; \
         ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
    )
    .await
    .unwrap();
    assert_eq!(
        verify_chain(&mut conn).await.unwrap(),
        Err(labedge_edge_gateway::audit::ChainBreak::Hash(3))
    );
}
