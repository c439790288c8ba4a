//! The report's JSON Schema is published in the repository; it must match the types.

use image_migrator::report::schema_json;

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json");

#[test]
fn committed_schema_matches_the_report_types() {
    let generated = schema_json();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/report.schema.json is out of date: run `UPDATE_SCHEMA=1 cargo test --test it report_schema::` and commit it"
    );
}

#[test]
fn schema_requires_the_contract_fields() {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    let required = schema["required"].as_array().unwrap();
    for field in [
        "schema_version",
        "tool_version",
        "started_at",
        "finished_at",
        "settings",
        "results",
        "summary",
    ] {
        assert!(required.iter().any(|f| f == field), "{field} not required");
    }
    let text = schema.to_string();
    for status in ["copied", "unchanged", "failed", "would-copy", "cancelled"] {
        assert!(
            text.contains(&format!("\"{status}\"")),
            "status {status} missing"
        );
    }
}
