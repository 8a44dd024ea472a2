//! HTTP: ETag, gzip, cache, Redis down.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_carry_an_etag_answer_304_when_unchanged_and_compress() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let path = with_id(routes::PATIENT, people.lefevre.id);
    let first = get(&gw, &path, &token).await.expect(200);
    let etag = first.header("etag").unwrap();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert_eq!(first.header("cache-control").as_deref(), Some("private, no-cache"));
    let request = |tag: &str| {
        TestRequest::get()
            .uri(&path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("if-none-match", tag.to_owned()))
    };
    let audited = audit_rows(&gw).await.len();
    let unchanged = gw.app.send(request(&etag)).await.expect(304);
    assert_eq!(audit_rows(&gw).await.len(), audited + 1, "a 304 is a read too: audited");
    assert!(unchanged.body.is_empty());
    assert_eq!(unchanged.header("etag").as_deref(), Some(etag.as_str()));
    let strong = etag.trim_start_matches("W/").to_owned();
    gw.app.send(request(&format!("\"x\", {strong}"))).await.expect(304);
    gw.app.send(request("*")).await.expect(304);
    gw.app.send(request("\"something-else\"")).await.expect(200);

    // A change of the patient changes the tag.
    let changed = PatientRow {
        phone: Some("+33700000000".into()),
        version: 2,
        ..people.lefevre.clone()
    };
    edge_data::upsert_patients(&gw, &[changed]).await;
    let after = gw.app.send(request(&etag)).await.expect(200);
    assert_ne!(after.header("etag").unwrap(), etag);

    // The same patient seen by a home sampler is another representation, with another tag.
    let me = gw.staff_id(HOME_SAMPLER.0);
    let at = edge_data::local_time(&gw, edge_data::local_today(&gw).await, 10, 0).await;
    edge_data::upsert_appointments(&gw, &[home_visit(gw.lab_id, people.lefevre.id, me, at, 1)]).await;
    let (_, sampler_token) = sampler(&gw).await;
    let masked = get(&gw, &path, &sampler_token).await.expect(200);
    assert_ne!(masked.header("etag"), after.header("etag"));

    // gzip when the tablet accepts it.
    let compressed = gw
        .app
        .send(
            TestRequest::get()
                .uri(&search("martin"))
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("accept-encoding", "gzip")),
        )
        .await
        .expect(200);
    assert_eq!(compressed.header("content-encoding").as_deref(), Some("gzip"));
    assert!(compressed.header("etag").is_some());
    assert_eq!(&compressed.body[..2], &[0x1f, 0x8b], "a gzip stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_misses_answer_the_same_and_misses_fill_redis() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let who = people.lefevre.id;
    let rx = prescription(gw.lab_id, who, date!(2026 - 03 - 10), &["NFS", "TP"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let (_, token) = nurse(&gw).await;
    let paths = [
        with_id(routes::PATIENT, who),
        with_id(routes::PATIENT_PRESCRIPTIONS, who),
        with_id(routes::PRESCRIPTION, rx.prescription.id),
    ];
    let key_of = |suffix: String| format!("{}{suffix}", gw.redis.prefix());
    let expected_keys = [
        key_of(keys::patient(who)),
        key_of(keys::patient_prescriptions(who)),
        key_of(keys::prescription(rx.prescription.id)),
    ];
    assert!(cache_keys(&gw).is_empty());

    let mut misses = Vec::new();
    for path in &paths {
        misses.push(get(&gw, path, &token).await.expect(200).body);
    }
    let mut stored = cache_keys(&gw);
    stored.sort();
    let mut wanted = expected_keys.to_vec();
    wanted.sort();
    assert_eq!(stored, wanted, "each miss filled its entry");

    // Hits answer byte for byte what the misses answered.
    for (path, miss) in paths.iter().zip(&misses) {
        assert_eq!(&get(&gw, path, &token).await.expect(200).body, miss, "{path}");
    }
    // A change the sync has not evicted yet (the row changed behind the cache's back) shows
    // that the answers come from Redis...
    gw.db
        .conn()
        .await
        .batch_execute(&format!(
            "UPDATE patients SET phone = '+33699999999', version = 5 WHERE id = '{who}'"
        ))
        .await
        .unwrap();
    let hit: Patient = get(&gw, &paths[0], &token).await.expect(200).json();
    assert_eq!(hit.version, 1, "served from Redis");
    // ...and once Redis is emptied (as by a restart), PostgreSQL answers and fills it again.
    gw.state.redis.evict_prefix("").await;
    assert!(gw.redis.keys().is_empty());
    let miss: Patient = get(&gw, &paths[0], &token).await.expect(200).json();
    assert_eq!(
        (miss.version, miss.contact.phone.unwrap().as_str()),
        (5, "+33699999999")
    );
    assert_eq!(cache_keys(&gw), [expected_keys[0].clone()]);
    // The cache holds the stored row, not a rendering for one role: the NIR is whole in Redis,
    // and only the way out masks it.
    let stored: PatientRow = serde_json::from_str(&redis_get(&expected_keys[0])).unwrap();
    assert_eq!(stored.nir, people.lefevre.nir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_from_postgresql_when_redis_is_unreachable() {
    let gw = TestGateway::start_with("TEST-LAB", |c| {
        c.redis.url = labedge_service::config::SecretString::new("redis://127.0.0.1:1");
    })
    .await;
    assert!(gw.state.redis.connection().is_none());
    let people = people(&gw).await;
    edge_data::insert_catalog(&gw).await;
    let rx = prescription(gw.lab_id, people.lefevre.id, date!(2026 - 03 - 10), &["NFS"]);
    edge_data::upsert_prescriptions(&gw, std::slice::from_ref(&rx)).await;
    let (_, token) = nurse(&gw).await;
    for _ in 0..2 {
        let patient: Patient = get(&gw, &with_id(routes::PATIENT, people.lefevre.id), &token)
            .await
            .expect(200)
            .json();
        assert_eq!(patient.id, people.lefevre.id);
        get(&gw, &with_id(routes::PATIENT_PRESCRIPTIONS, people.lefevre.id), &token)
            .await
            .expect(200);
        get(&gw, &with_id(routes::PRESCRIPTION, rx.prescription.id), &token)
            .await
            .expect(200);
        assert_eq!(names(&gw, "lef", &token).await.len(), 2);
    }
}
