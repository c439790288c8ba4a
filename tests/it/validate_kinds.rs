//! A user moving whole projects checks with `validate` what each target registry is taken
//! for — Harbor, SWR, ECR… — and which management API will be asked (issue 23, item 2);
//! auth.json's new `kind`, `region` and `api` fields are checked like every other field.

use crate::support;

use serde_json::Value;
use support::project::{Project, config_error};

const IMAGES: &str = r#"{
  "quay.io/team/app": [
    "swr.cn-north-4.myhuaweicloud.com/team/app",
    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/app",
    "harbor.example.com/team/app",
    "registry.internal:5000/team/app",
    "docker.io/team/app",
    "swr.private.cloud/team/app"
  ]
}"#;

fn targets(project: &Project) -> Vec<Value> {
    let output = project
        .validate(&["--format", "json"])
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    doc["targets"].as_array().unwrap().clone()
}

#[test]
fn each_target_shows_its_kind_and_api() {
    let project = Project::with_images(IMAGES);
    project.write(
        "auth.json",
        r#"{
  "harbor.example.com": {"kind": "harbor"},
  "swr.private.cloud/team": {"kind": "swr", "region": "ap-southeast-1",
                             "api": "https://swr-api.private.cloud/"}
}"#,
    );
    let shown: Vec<(String, Value, String, Value, Value)> = targets(&project)
        .iter()
        .map(|t| {
            (
                t["registry"].as_str().unwrap().to_string(),
                t["kind"].clone(),
                t["kind_from"].as_str().unwrap().to_string(),
                t["region"].clone(),
                t["api"].clone(),
            )
        })
        .collect();
    let s = |v: &str| Value::String(v.into());
    assert_eq!(
        shown,
        [
            (
                "swr.cn-north-4.myhuaweicloud.com".into(),
                s("swr"),
                "host".into(),
                s("cn-north-4"),
                s("https://swr-api.cn-north-4.myhuaweicloud.com")
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn".into(),
                s("ecr"),
                "host".into(),
                s("cn-north-1"),
                s("https://api.ecr.cn-north-1.amazonaws.com.cn")
            ),
            (
                "harbor.example.com".into(),
                s("harbor"),
                "auth.json".into(),
                Value::Null,
                s("https://harbor.example.com")
            ),
            (
                "registry.internal:5000".into(),
                Value::Null,
                "ping".into(),
                Value::Null,
                Value::Null
            ),
            (
                "docker.io".into(),
                s("dockerhub"),
                "host".into(),
                Value::Null,
                s("https://hub.docker.com")
            ),
            (
                "swr.private.cloud".into(),
                s("swr"),
                "auth.json".into(),
                s("ap-southeast-1"),
                s("https://swr-api.private.cloud")
            ),
        ]
    );

    // The text format says the same in words, and that Harbor's ping decides the rest.
    let output = project.validate(&[]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "target swr.cn-north-4.myhuaweicloud.com: kind swr (from host), region cn-north-4, \
             API https://swr-api.cn-north-4.myhuaweicloud.com"
        ),
        "{text}"
    );
    assert!(
        text.contains("target registry.internal:5000: kind harbor or distribution (GET /api/v2.0/ping decides at run time)"),
        "{text}"
    );
}

#[test]
fn a_bad_kind_region_or_api_names_the_file_and_key() {
    for (entry, expected) in [
        (
            r#"{"kind": "gitlab"}"#,
            r#"kind: "gitlab" is not a kind this tool knows; expected one of "harbor", "swr", "ecr", "distribution""#,
        ),
        (
            r#"{"kind": "swr"}"#,
            r#"region: required for kind "swr" when the host does not name the region"#,
        ),
        (
            r#"{"region": "EU West"}"#,
            r#"region: "EU West" is not a region name"#,
        ),
        (
            r#"{"api": "swr-api.example.com"}"#,
            r#"api: "swr-api.example.com" is not a base URL"#,
        ),
        (r#"{"kind": 3}"#, "invalid type: integer, expected a string"),
    ] {
        let project = Project::with_images(IMAGES);
        project.write(
            "auth.json",
            format!("{{\n  \"swr.private.cloud\": {entry}\n}}"),
        );
        let stderr = config_error(&mut project.validate(&[]));
        assert!(
            stderr.contains(&format!("auth.json:2: \"swr.private.cloud\": {expected}")),
            "{entry}: {stderr}"
        );
    }
}
