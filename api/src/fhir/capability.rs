//! `GET /fhir/R4/metadata`: the CapabilityStatement, built from the same table of types and search
//! parameters the routes dispatch on, so that it lists exactly what is supported.

use serde_json::{Value, json};

use super::resources::Kind;

/// The CapabilityStatement.
pub fn statement() -> Value {
    let resources: Vec<Value> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let mut interactions = vec![json!({"code": "read"})];
            if kind.searchable() {
                interactions.push(json!({"code": "search-type"}));
            }
            if kind.writable() {
                interactions.push(json!({"code": "create"}));
                interactions.push(json!({"code": "update"}));
            }
            let mut params: Vec<Value> = vec![
                json!({"name": "_id", "type": "token"}),
                json!({"name": "_count", "type": "number"}),
            ];
            if !kind.searchable() {
                params.clear();
            }
            for name in kind.search_params() {
                let kind_of = match *name {
                    "identifier" => "token",
                    "patient" | "practitioner" => "reference",
                    "_lastUpdated" => "date",
                    _ => "number",
                };
                params.push(json!({"name": name, "type": kind_of}));
            }
            let mut resource = json!({
                "type": kind.name(),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": false,
                "updateCreate": kind.writable(),
                "conditionalCreate": kind.writable(),
                "conditionalUpdate": kind.writable(),
                "conditionalDelete": "not-supported",
                "searchParam": params,
            });
            if kind == Kind::Patient {
                resource["supportedProfile"] =
                    json!(["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-06",
        "kind": "instance",
        "software": {"name": "LabEdge cloud API", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "LabEdge: the lab network's field backend"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "description": "Mutual TLS with an integration client certificate (api create-integration-client); SMART system scopes per resource type",
            },
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
}
