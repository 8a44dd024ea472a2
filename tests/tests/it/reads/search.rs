//! Search.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_found_by_name_prefix_birth_date_and_nir() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;

    // Name prefixes, case and accents folded, separators ignored; birth or used family name.
    assert_eq!(names(&gw, "lefe", &token).await, ["Lefèvre"]);
    assert_eq!(names(&gw, "LÉFÈV", &token).await, ["Lefèvre"]);
    assert_eq!(names(&gw, "d'alm", &token).await, ["D'Almeida-Lefèvre"]);
    assert_eq!(names(&gw, "D ALMEIDA-LEF", &token).await, ["D'Almeida-Lefèvre"]);
    assert_eq!(names(&gw, "Lefo", &token).await, ["Bernard"], "used family name");
    assert_eq!(names(&gw, "mart", &token).await.len(), 7);

    // Birth dates, both notations.
    for q in ["1984-06-30", "30/06/1984"] {
        let page: PatientPage = get(&gw, &search(q), &token).await.expect(200).json();
        assert_eq!(page.items.len(), 1, "{q}");
        assert_eq!(page.items[0].id, people.lefevre.id);
        assert_eq!(page.items[0].identity_status, IdentityStatus::Qualified);
    }

    // An exact NIR, spaces allowed; a NIR nobody has finds nobody.
    let nir = people.lefevre.nir.clone().unwrap();
    let spaced = format!("{} {} {} {}", &nir[..1], &nir[1..5], &nir[5..10], &nir[10..]);
    let page: PatientPage = get(&gw, &search(&spaced), &token).await.expect(200).json();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].nir.as_ref().unwrap().value,
        nir,
        "a nurse sees the NIR in full"
    );
    let other = edge_data::nir("M", date!(1950 - 02 - 03), 999);
    let page: PatientPage = get(&gw, &search(&other), &token).await.expect(200).json();
    assert!(page.items.is_empty());
    let married: PatientPage = get(&gw, &search("bern"), &token).await.expect(200).json();
    assert_eq!(married.items[0].id, people.married.id);
    assert_eq!(married.items[0].used_family_name.as_ref().unwrap().as_str(), "Lefort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_and_injections_match_nobody() {
    let gw = TestGateway::start().await;
    people(&gw).await;
    let (_, token) = nurse(&gw).await;
    // Too few letters to be a name search: refused, naming the field, never a 5xx.
    for q in ["%", "_", "%%%", "___", "' OR 1=1--", "\\"] {
        let problem = get(&gw, &search(q), &token).await.expect(422).problem();
        assert_eq!(problem.code, ErrorCode::ValidationFailed, "{q}");
        assert_eq!(problem.errors[0].pointer, "/q", "{q}");
    }
    // Enough letters: the other characters are matched literally, so nobody has such a name.
    for q in ["mar%", "MAR_", "%mar", "_art", "x' OR 1=1--", "Mar' OR '1'='1", "mar\\"] {
        assert!(names(&gw, q, &token).await.is_empty(), "{q} matched someone");
    }
    assert_eq!(names(&gw, "mar", &token).await.len(), 7, "the data is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_are_bounded_and_say_when_more_follow() {
    let gw = TestGateway::start().await;
    let people = people(&gw).await;
    let (_, token) = nurse(&gw).await;
    let mut seen = Vec::new();
    for (page, more) in [(1, true), (2, true), (3, false)] {
        let answer: PatientPage = get(&gw, &format!("{}&page={page}&per_page=3", search("martin")), &token)
            .await
            .expect(200)
            .json();
        assert_eq!((answer.page, answer.per_page, answer.has_more), (page, 3, more));
        seen.extend(answer.items.iter().map(|p| p.first_given_name.as_str().to_owned()));
    }
    let expected: Vec<String> = people.martins.iter().map(|p| p.first_given_name.clone()).collect();
    assert_eq!(
        seen, expected,
        "by name, given name, birth date; no repeats across pages"
    );
    let far: PatientPage = get(&gw, &format!("{}&page=9", search("martin")), &token)
        .await
        .expect(200)
        .json();
    assert!(far.items.is_empty() && !far.has_more);

    for (query, pointer) in [
        (format!("{}&per_page=51", search("martin")), "/per_page"),
        (format!("{}&per_page=0", search("martin")), "/per_page"),
        (format!("{}&page=0", search("martin")), "/page"),
        (format!("{}&page=1001", search("martin")), "/page"),
        (routes::PATIENTS.to_owned(), "/q"),
        (search(&"a".repeat(65)), "/q"),
    ] {
        let problem = get(&gw, &query, &token).await.expect(422).problem();
        assert_eq!(problem.errors[0].pointer, pointer, "{query}");
    }
    // A parameter of the wrong type or unknown is refused, never a 5xx.
    for query in [
        format!("{}&per_page=lots", search("martin")),
        format!("{}&lab_id=x", search("martin")),
    ] {
        let response = get(&gw, &query, &token).await;
        assert!(
            matches!(response.status.as_u16(), 400 | 422),
            "{query}: {}",
            response.status
        );
        response.problem();
    }
    // Without a token: 401, whatever the query.
    gw.app.get(&search("%")).await.expect(401);
}
