//! The OpenAPI schemas of the `openapi` feature say what serde writes: the
//! wire names of enums, the form of instants and ids, and which fields an
//! answer always holds.

use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApprovalRequest, ChangeKind, PolicyChange, Principal, Priority, Rules, Status, Timestamp, View,
};

fn schema_of<T: ToSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

fn wire_names<T: serde::Serialize>(all: &[T]) -> Value {
    Value::Array(
        all.iter()
            .map(|item| serde_json::to_value(item).unwrap())
            .collect(),
    )
}

#[test]
fn enums_list_their_wire_names() {
    assert_eq!(schema_of::<Status>()["enum"], wire_names(&Status::ALL));
    assert_eq!(
        schema_of::<ChangeKind>()["enum"],
        wire_names(&ChangeKind::ALL)
    );
    assert_eq!(schema_of::<Priority>()["enum"], wire_names(&Priority::ALL));
    assert_eq!(schema_of::<View>()["enum"], wire_names(&View::ALL));
}

#[test]
fn instants_and_ids_are_strings_in_their_formats() {
    let instant = schema_of::<Timestamp>();
    assert_eq!(
        (&instant["type"], &instant["format"]),
        (&json!("string"), &json!("date-time"))
    );
    let request = schema_of::<ApprovalRequest>();
    let id = &request["properties"]["id"];
    assert_eq!(
        (&id["type"], &id["format"]),
        (&json!("string"), &json!("uuid"))
    );
    assert_eq!(
        request["properties"]["createdAt"]["$ref"],
        "#/components/schemas/Timestamp"
    );
}

/// A stored request as serde writes it holds every field its schema
/// requires, and no field its schema does not name.
#[test]
fn a_request_holds_what_its_schema_names() {
    let rules = Rules::parse(&json!({
        "levels": [{ "name": "peer", "ttlSeconds": 60, "stages": [
            { "name": "review", "requiredApprovals": 1, "eligibleRoles": ["engineer"] }
        ]}],
        "defaultLevel": "peer"
    }))
    .unwrap();
    let change = PolicyChange::parse(
        &json!({
            "policyId": "iam/admins", "policyType": "iam", "changeKind": "update",
            "environment": "prod", "title": "Add bob",
            "justification": "Bob joins the on-call rotation.", "riskScore": 40,
            "metadata": { "ticket": "SEC-12" }
        }),
        Some(&rules),
    )
    .unwrap();
    let request = ApprovalRequest::create(
        Uuid::from_u128(7),
        change,
        &Principal::new("alice", &["engineer"]),
        &rules,
        &rules.digest(),
        Timestamp::from_millis(1_767_225_600_000),
    )
    .unwrap();
    let written = serde_json::to_value(&request).unwrap();
    for (value, schema) in [
        (&written, schema_of::<ApprovalRequest>()),
        (&written["change"], schema_of::<PolicyChange>()),
    ] {
        let fields = value.as_object().unwrap();
        let named = schema["properties"].as_object().unwrap();
        for field in fields.keys() {
            assert!(named.contains_key(field), "`{field}` is not in the schema");
        }
        for field in schema["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            assert!(
                fields.contains_key(field),
                "required `{field}` is not written"
            );
        }
    }
}
