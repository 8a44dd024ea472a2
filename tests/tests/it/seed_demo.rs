//! `labedge-demo` against a real migrated cloud database: the synthetic network must satisfy what the
//! tablets and gateways rely on (valid NIRs, staff who can log in, ordered home rounds, consistent
//! prescriptions) and the change feed must hear of every row.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, SmallInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use labedge_api::demo::{SeedArgs, SeedSummary, seed_into};
use labedge_schema::cloud::schema::{
    appointments, change_log, exam_catalog, labs, patients, prescribed_exams, prescriptions, staff, tube_types,
};
use labedge_schema::db::Database;
use labedge_service::secrets::verify_secret;
use labedge_tests::db::TestDb;
use labedge_tests::db::count;
use mobile_contracts::nir::Nir;
use time::Date;
use uuid::Uuid;

fn small() -> SeedArgs {
    SeedArgs {
        patients: 400,
        days_back: 10,
        days_ahead: 2,
        ..SeedArgs::default()
    }
}

async fn seeded(args: &SeedArgs) -> (TestDb, AsyncPgConnection, SeedSummary) {
    let db = TestDb::migrated(Database::Cloud).await;
    let mut conn = db.conn().await;
    let summary = seed_into(&mut conn, args).await.unwrap();
    (db, conn, summary)
}

/// A date in Paris, computed by PostgreSQL's own time-zone database (independent of the seeder's).
const PARIS_DAY: &str = "(a.scheduled_at AT TIME ZONE 'Europe/Paris')::date";
const PARIS_TODAY: &str = "(now() AT TIME ZONE 'Europe/Paris')::date";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_hold_what_the_summary_says_and_the_change_feed_has_every_row() {
    let args = small();
    let (_db, mut conn, summary) = seeded(&args).await;
    let c = summary.counts;

    let labs_n: i64 = labs::table.count().get_result(&mut conn).await.unwrap();
    let staff_n: i64 = staff::table.count().get_result(&mut conn).await.unwrap();
    let tubes_n: i64 = tube_types::table.count().get_result(&mut conn).await.unwrap();
    let exams_n: i64 = exam_catalog::table.count().get_result(&mut conn).await.unwrap();
    let patients_n: i64 = patients::table.count().get_result(&mut conn).await.unwrap();
    let prescriptions_n: i64 = prescriptions::table.count().get_result(&mut conn).await.unwrap();
    let prescribed_n: i64 = prescribed_exams::table.count().get_result(&mut conn).await.unwrap();
    let appointments_n: i64 = appointments::table.count().get_result(&mut conn).await.unwrap();
    let home_n: i64 = appointments::table
        .filter(appointments::kind.eq("home"))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    let change_n: i64 = change_log::table.count().get_result(&mut conn).await.unwrap();

    assert_eq!(labs_n, 3, "the central lab and 2 proximity labs");
    assert_eq!(staff_n, 3 * (4 + 3 + 1));
    assert_eq!(tubes_n, 7);
    assert!(exams_n >= 30, "{exams_n} exams");
    assert_eq!(patients_n, 400);
    assert!(prescriptions_n > 400, "{prescriptions_n} prescriptions");
    assert!(prescribed_n >= prescriptions_n);
    assert!(appointments_n > 0 && home_n > 0 && home_n < appointments_n);
    let as_db = |n: usize| i64::try_from(n).unwrap();
    assert_eq!(
        [
            labs_n,
            staff_n,
            tubes_n,
            exams_n,
            patients_n,
            prescriptions_n,
            prescribed_n,
            appointments_n,
            home_n
        ],
        [
            c.labs,
            c.staff,
            c.tube_types,
            c.exams,
            c.patients,
            c.prescriptions,
            c.prescribed_exams,
            c.appointments,
            c.home_appointments
        ]
        .map(as_db)
    );

    // One entry per inserted row: the deferred triggers ran at commit (a prescribed exam is announced
    // as a change of its prescription).
    let rows = labs_n + staff_n + tubes_n + exams_n + patients_n + prescriptions_n + prescribed_n + appointments_n;
    assert_eq!(change_n, rows);
    assert_eq!(summary.change_log_entries, change_n);
    let per_lab: i64 = change_log::table
        .filter(change_log::lab_id.eq_any(summary.labs.iter().map(|lab| lab.id).collect::<Vec<_>>()))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        per_lab,
        labs_n + staff_n + prescriptions_n + prescribed_n + appointments_n
    );

    let codes: Vec<(String, String)> = labs::table
        .select((labs::code, labs::kind))
        .order(labs::code)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        codes,
        [
            ("CENTRAL", "central"),
            ("VENISSIEUX", "proximity"),
            ("VILLEURBANNE", "proximity")
        ]
        .map(|(code, kind)| (code.to_owned(), kind.to_owned()))
    );

    let text = summary.to_string();
    for needle in [
        "CENTRAL",
        "VILLEURBANNE",
        "VENISSIEUX",
        "PIN of every staff member: 1234",
        "labedge-admin",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    for lab in &summary.labs {
        assert!(text.contains(&lab.logins.lab_admin), "{text}");
        assert!(text.contains(lab.logins.nurse.as_deref().unwrap()), "{text}");
        assert!(text.contains(lab.logins.home_sampler.as_deref().unwrap()), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_identities_follow_the_ins_rules() {
    let (_db, mut conn, _) = seeded(&small()).await;
    type Identity = (
        Option<String>,
        Option<String>,
        String,
        String,
        Date,
        Option<String>,
        String,
        String,
    );
    let rows: Vec<Identity> = patients::table
        .select((
            patients::nir,
            patients::ins_oid,
            patients::identity_status,
            patients::sex,
            patients::birth_date,
            patients::birth_place_code,
            patients::first_given_name,
            patients::birth_given_names,
        ))
        .load(&mut conn)
        .await
        .unwrap();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    let mut places = (0, 0, 0);
    for (nir, oid, status, sex, birth, place, first, given) in &rows {
        *statuses.entry(status.clone()).or_default() += 1;
        assert!(given.starts_with(first.as_str()), "{given} / {first}");
        assert!((1930..=2024).contains(&birth.year()));
        let place = place.as_deref().unwrap();
        places.0 += usize::from(place.starts_with("69"));
        places.1 += usize::from(place.starts_with("2A") || place.starts_with("2B"));
        places.2 += usize::from(place.starts_with("99"));
        if matches!(status.as_str(), "recovered" | "qualified") {
            assert!(nir.is_some(), "a {status} identity has its matricule");
            assert_eq!(oid.as_deref(), Some("1.2.250.1.213.1.4.8"));
        }
        let Some(nir) = nir else { continue };
        let parsed = Nir::parse(nir).unwrap();
        assert_eq!(parsed.as_str(), nir);
        let expected_sex = if sex == "F" { 2 } else { 1 };
        assert_eq!(parsed.sex_digit(), expected_sex, "sex digit of a {sex} patient");
        assert_eq!(nir[1..3].parse::<i32>().unwrap(), birth.year() % 100, "year of birth");
        assert_eq!(
            nir[3..5].parse::<u8>().unwrap(),
            u8::from(birth.month()),
            "month of birth"
        );
        assert_eq!(&nir[5..10], place, "department and commune are the birth place");
    }
    for status in ["qualified", "validated", "recovered", "provisional"] {
        assert!(
            statuses.get(status).copied().unwrap_or(0) > 0,
            "no {status} identity in {statuses:?}"
        );
    }
    assert!(statuses["qualified"] > rows.len() / 2, "{statuses:?}");
    assert!(places.0 > rows.len() / 2, "mostly born in the Rhône: {places:?}");
    assert!(
        places.1 > 0 && places.2 > 0,
        "some born in Corsica and abroad: {places:?}"
    );

    let married: i64 = patients::table
        .filter(patients::used_family_name.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(married > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lab_has_each_role_and_the_demo_secrets_verify() {
    let args = SeedArgs {
        pin: "482916".to_owned(),
        admin_password: "demo console pass".to_owned(),
        ..small()
    };
    let (_db, mut conn, summary) = seeded(&args).await;
    let rows: Vec<(Uuid, String, String, String, Option<String>)> = staff::table
        .select((
            staff::lab_id,
            staff::login,
            staff::role,
            staff::pin_hash,
            staff::password_hash,
        ))
        .load(&mut conn)
        .await
        .unwrap();
    let mut roles: BTreeMap<(Uuid, String), usize> = BTreeMap::new();
    for (lab, _, role, _, _) in &rows {
        *roles.entry((*lab, role.clone())).or_default() += 1;
    }
    for lab in &summary.labs {
        assert_eq!(roles.get(&(lab.id, "nurse".to_owned())), Some(&4), "{}", lab.code);
        assert_eq!(
            roles.get(&(lab.id, "home_sampler".to_owned())),
            Some(&3),
            "{}",
            lab.code
        );
        assert_eq!(roles.get(&(lab.id, "lab_admin".to_owned())), Some(&1), "{}", lab.code);
    }
    let mut hashes: Vec<&str> = rows.iter().map(|(_, _, _, hash, _)| hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), rows.len(), "each PIN hash has its own salt");

    // argon2 is slow on purpose: check one member of each role per lab, and every admin password.
    let mut checked = std::collections::HashSet::new();
    for (lab, login, role, pin_hash, password_hash) in &rows {
        assert_eq!(password_hash.is_some(), role == "lab_admin", "{login}");
        if let Some(password_hash) = password_hash {
            assert!(verify_secret("demo console pass", password_hash), "{login}");
            assert!(!verify_secret("labedge-admin", password_hash));
        }
        if checked.insert((*lab, role.clone())) {
            assert!(pin_hash.starts_with("$argon2id$"));
            assert!(verify_secret("482916", pin_hash), "PIN of {login}");
            assert!(!verify_secret("1234", pin_hash));
        }
    }
    assert_eq!(checked.len(), 9);
    for lab in &summary.labs {
        let nurse = lab.logins.nurse.clone().unwrap();
        assert!(
            rows.iter()
                .any(|(id, login, role, _, _)| *id == lab.id && *login == nurse && role == "nurse")
        );
    }
}

#[derive(QueryableByName, Debug)]
struct RoundStop {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    staff_id: Uuid,
    #[diesel(sql_type = Nullable<SmallInt>)]
    round_position: Option<i16>,
    #[diesel(sql_type = BigInt)]
    minute_of_day: i64,
    #[diesel(sql_type = Nullable<Text>)]
    address_line: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    postal_code: Option<String>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    prescription_status: String,
    #[diesel(sql_type = Bool)]
    same_patient: bool,
    #[diesel(sql_type = Bool)]
    same_lab: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_home_sampler_has_an_ordered_round_today() {
    let (_db, mut conn, _) = seeded(&small()).await;
    let sql = format!(
        "SELECT a.assigned_staff_id AS staff_id, a.round_position,
                (extract(hour FROM a.scheduled_at AT TIME ZONE 'Europe/Paris') * 60
                 + extract(minute FROM a.scheduled_at AT TIME ZONE 'Europe/Paris'))::bigint AS minute_of_day,
                a.address_line, a.postal_code, a.status, p.status AS prescription_status,
                p.patient_id = a.patient_id AS same_patient, p.lab_id = a.lab_id AS same_lab
         FROM appointments a JOIN prescriptions p ON p.id = a.prescription_id
         WHERE a.kind = 'home' AND {PARIS_DAY} = {PARIS_TODAY}
         ORDER BY a.assigned_staff_id, a.scheduled_at"
    );
    let stops: Vec<RoundStop> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
    let samplers: Vec<Uuid> = staff::table
        .filter(staff::role.eq("home_sampler"))
        .select(staff::id)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(samplers.len(), 9);
    for sampler in samplers {
        let round: Vec<&RoundStop> = stops.iter().filter(|stop| stop.staff_id == sampler).collect();
        assert!((8..=15).contains(&round.len()), "a round of {} visits", round.len());
        let positions: Vec<i16> = round.iter().map(|stop| stop.round_position.unwrap()).collect();
        let expected: Vec<i16> = (1..=i16::try_from(round.len()).unwrap()).collect();
        assert_eq!(positions, expected, "positions follow the times");
        assert_eq!(round[0].minute_of_day, 7 * 60, "the round starts at 07:00 Paris time");
        for pair in round.windows(2) {
            let gap = pair[1].minute_of_day - pair[0].minute_of_day;
            assert!((15..=25).contains(&gap), "{gap} min between visits");
        }
        for stop in round {
            assert!(
                stop.address_line.as_deref().is_some_and(|line| !line.is_empty()),
                "{stop:?}"
            );
            assert!(
                stop.postal_code.as_deref().is_some_and(|code| code.starts_with("69")),
                "{stop:?}"
            );
            assert_eq!(stop.status, "scheduled");
            assert_eq!(stop.prescription_status, "open");
            assert!(stop.same_patient && stop.same_lab, "{stop:?}");
        }
    }
    let with_notes = count(
        &mut conn,
        "SELECT count(*) AS n FROM appointments WHERE kind = 'home' AND access_notes IS NOT NULL",
    )
    .await;
    assert!(with_notes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_and_prescriptions_are_consistent() {
    let (_db, mut conn, _) = seeded(&small()).await;
    let mismatched = count(
        &mut conn,
        "SELECT count(*) AS n FROM appointments a JOIN prescriptions p ON p.id = a.prescription_id
         WHERE p.patient_id <> a.patient_id OR p.lab_id <> a.lab_id",
    )
    .await;
    assert_eq!(
        mismatched, 0,
        "an appointment's prescription belongs to its patient and lab"
    );
    let without = count(
        &mut conn,
        "SELECT count(*) AS n FROM appointments WHERE prescription_id IS NULL",
    )
    .await;
    assert_eq!(without, 0);

    let exam_counts = count(
        &mut conn,
        "SELECT count(*) AS n FROM (
             SELECT p.id FROM prescriptions p
             LEFT JOIN prescribed_exams e ON e.prescription_id = p.id
             LEFT JOIN exam_catalog c ON c.code = e.exam_code
             GROUP BY p.id HAVING count(c.code) NOT BETWEEN 1 AND 6) bad",
    )
    .await;
    assert_eq!(exam_counts, 0, "every prescription has 1 to 6 exams of the catalog");
    let rpps = count(
        &mut conn,
        "SELECT count(*) AS n FROM prescriptions WHERE prescriber_name NOT LIKE 'Dr %' OR issued_on > (now() AT TIME ZONE 'Europe/Paris')::date",
    )
    .await;
    assert_eq!(rpps, 0);

    // Past visits are mostly collected, today's and later ones all scheduled, and the prescription's
    // status follows its visit.
    let by_period: Vec<(String, String, String, i64)> = {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            period: String,
            #[diesel(sql_type = Text)]
            status: String,
            #[diesel(sql_type = Text)]
            prescription_status: String,
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sql = format!(
            "SELECT CASE WHEN {PARIS_DAY} < {PARIS_TODAY} THEN 'past' ELSE 'future' END AS period,
                    a.status, p.status AS prescription_status, count(*) AS n
             FROM appointments a JOIN prescriptions p ON p.id = a.prescription_id
             GROUP BY 1, 2, 3"
        );
        let rows: Vec<Row> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        rows.into_iter()
            .map(|r| (r.period, r.status, r.prescription_status, r.n))
            .collect()
    };
    let total = |period: &str, status: Option<&str>| -> i64 {
        by_period
            .iter()
            .filter(|r| r.0 == period && status.is_none_or(|s| r.1 == s))
            .map(|r| r.3)
            .sum()
    };
    assert!(total("future", None) > 0);
    assert_eq!(total("future", Some("scheduled")), total("future", None));
    let past = total("past", None);
    assert!(total("past", Some("collected")) * 10 > past * 8, "{by_period:?}");
    assert!(
        total("past", Some("no_show")) + total("past", Some("cancelled")) > 0,
        "{by_period:?}"
    );
    for (period, status, prescription_status, _) in &by_period {
        let allowed: &[&str] = match status.as_str() {
            "scheduled" | "no_show" => &["open"],
            "collected" => &["sampled", "completed"],
            "cancelled" => &["open", "cancelled"],
            other => panic!("unexpected status {other} ({period})"),
        };
        assert!(
            allowed.contains(&prescription_status.as_str()),
            "{status} visit, {prescription_status} prescription"
        );
    }
    let open_without_visit = count(
        &mut conn,
        "SELECT count(*) AS n FROM prescriptions p WHERE p.status = 'open'
         AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.prescription_id = p.id)",
    )
    .await;
    assert!(open_without_visit > 0, "some prescriptions wait for a walk-in");
    let fasting = count(&mut conn, "SELECT count(*) AS n FROM prescriptions WHERE fasting").await;
    assert!(fasting > 0);

    // Lab visits fall in opening hours (07:00–18:00 Paris time), never on a Sunday.
    let outside = count(
        &mut conn,
        "SELECT count(*) AS n FROM appointments a WHERE a.kind = 'lab' AND (
             (a.scheduled_at AT TIME ZONE 'Europe/Paris')::time NOT BETWEEN '07:00' AND '18:00'
             OR extract(isodow FROM a.scheduled_at AT TIME ZONE 'Europe/Paris') = 7)",
    )
    .await;
    assert_eq!(outside, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_twice_is_refused() {
    let args = SeedArgs {
        patients: 50,
        ..small()
    };
    let (_db, mut conn, summary) = seeded(&args).await;
    let error = seed_into(&mut conn, &args).await.unwrap_err();
    assert!(format!("{error:#}").contains("already seeded"), "{error:#}");
    let patients_n: i64 = patients::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(patients_n, 50);
    let change_n: i64 = change_log::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(change_n, summary.change_log_entries);
}

type NamedPatient = (Uuid, String, String, Option<String>, Date, Option<String>);

async fn patients_of(args: &SeedArgs) -> Vec<NamedPatient> {
    let (_db, mut conn, _) = seeded(args).await;
    patients::table
        .select((
            patients::id,
            patients::birth_family_name,
            patients::birth_given_names,
            patients::used_family_name,
            patients::birth_date,
            patients::nir,
        ))
        .order(patients::id)
        .load(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_patients() {
    let args = SeedArgs {
        patients: 150,
        nurses_per_lab: 1,
        home_samplers_per_lab: 1,
        ..small()
    };
    let first = patients_of(&args).await;
    // Another network shape, same seed: identities do not depend on the number of labs or days.
    let reshaped = SeedArgs {
        proximity_labs: 4,
        days_back: 3,
        ..args.clone()
    };
    let second = patients_of(&reshaped).await;
    assert_eq!(first.len(), 150);
    assert_eq!(first, second);
    let other = patients_of(&SeedArgs { seed: 7, ..args }).await;
    let names = |rows: &[NamedPatient]| rows.iter().map(|r| (r.1.clone(), r.2.clone())).collect::<Vec<_>>();
    assert_ne!(names(&first), names(&other));
}

/// The production `api` has no command that fills a database with made-up patients: that is the
/// separate `labedge-demo` binary's job alone.
#[test]
fn the_production_api_has_no_demo_command_and_labedge_demo_has_it() {
    use labedge_tests::spawn::{output_text, run};
    let help = run("api", &["--help"], &[]);
    let text = output_text(&help);
    assert!(help.status.success(), "{text}");
    assert!(
        text.contains("provision-gateway"),
        "the API's commands are listed: {text}"
    );
    assert!(!text.contains("seed"), "no demo command in the production API: {text}");
    let refused = run("api", &["seed-demo"], &[]);
    assert!(!refused.status.success(), "{}", output_text(&refused));

    let demo = run("labedge-demo", &["--help"], &[]);
    let text = output_text(&demo);
    assert!(demo.status.success(), "{text}");
    for option in ["--config", "--patients", "--proximity-labs", "--seed"] {
        assert!(text.contains(option), "labedge-demo takes {option}: {text}");
    }
}
