//! Fails when the committed `openapi.json` no longer matches the code.
//!
//! Regenerate it with:
//! `UPDATE_OPENAPI=1 cargo test -p mobile-contracts --all-features --test openapi_fresh`
#![cfg(feature = "openapi")]

use std::path::Path;

const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test -p mobile-contracts --all-features --test openapi_fresh";

#[test]
fn committed_openapi_json_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = mobile_contracts::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    // Compared as JSON values, not text, so a line-ending conversion on checkout is not "stale".
    let same = match serde_json::from_str::<serde_json::Value>(&committed) {
        Ok(committed) => committed == serde_json::from_str::<serde_json::Value>(&generated).unwrap(),
        Err(_) => false,
    };
    assert!(
        same,
        "{} is stale or missing: the contract types or routes changed.\nRegenerate it with:\n  {REGENERATE}\nand commit it with the change.",
        path.display()
    );
}

#[test]
fn every_route_constant_is_in_the_document() {
    let document = serde_json::to_value(mobile_contracts::openapi::document()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let missing: Vec<_> = mobile_contracts::routes::ALL
        .iter()
        .filter(|route| !paths.contains_key(**route))
        .collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
}
