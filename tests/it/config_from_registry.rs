//! A user moving a whole Harbor project writes images.json with `config --from-registry`
//! instead of one hand-written rule per repository (issue 23, item 1): the repositories
//! come from the registry's own API (Harbor's, paginated; `_catalog` for a plain
//! registry), one whole-repository rule each, sorted, the path below the namespace kept.

use crate::support;

use serde_json::{Value, json};
use support::harbor::HarborStandIn;
use support::registry::TestRegistry;
use support::seed::{ImageSpec, Media, Seeder, deterministic_layer};

/// Pushes a one-layer image to each repository.
fn seed(registry: &TestRegistry, repositories: &[&str]) {
    let seeder = Seeder::for_registry(registry);
    for (i, repository) in repositories.iter().enumerate() {
        let spec = ImageSpec::new(
            Media::Oci,
            "linux",
            "amd64",
            vec![deterministic_layer(i as u64, 100)],
        );
        seeder.push_image(repository, "1.0", &spec);
    }
}

const REPOSITORIES: [&str; 6] = [
    "team/api",
    "team/web/frontend",
    "team/legacy/old-api",
    "team/worker",
    "team-x/other",
    "infra/proxy",
];

/// `image-migrator config <args>` in a directory holding `auth`; (exit code, stdout,
/// stderr).
fn config(auth: &Value, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth.json"), auth.to_string()).unwrap();
    let output = support::migrator()
        .current_dir(dir.path())
        .arg("config")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn harbor_auth(host: &str, user: &str, password: &str) -> Value {
    json!({ host: { "username": user, "password": password, "insecure": true } })
}

#[test]
fn a_harbor_project_becomes_one_rule_per_repository() {
    let registry = TestRegistry::start();
    seed(&registry, &REPOSITORIES);
    // Pages of two: five pages for the project's four repositories and Link between them.
    let harbor = HarborStandIn::start(
        &registry,
        &["team", "team-x", "infra"],
        &[("robot$reader", "s3cret-pw", false)],
        2,
    );
    let (code, stdout, stderr) = config(
        &harbor_auth(&harbor.host, "robot$reader", "s3cret-pw"),
        &[
            "--from-registry",
            &format!("{}/team", harbor.host),
            "-t",
            "swr.cn-north-4.myhuaweicloud.com/moved",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rules: Value = serde_json::from_str(&stdout).unwrap();
    let h = &harbor.host;
    let swr = "swr.cn-north-4.myhuaweicloud.com/moved";
    assert_eq!(
        rules,
        json!({
            format!("{h}/team/api"): format!("{swr}/api"),
            format!("{h}/team/legacy/old-api"): format!("{swr}/legacy/old-api"),
            format!("{h}/team/web/frontend"): format!("{swr}/web/frontend"),
            format!("{h}/team/worker"): format!("{swr}/worker"),
        })
    );
    // Sorted, as written.
    let keys: Vec<&String> = rules.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(stderr.contains("listed 4 repositories"), "{stderr}");
    assert!(stderr.contains("(harbor: GET http://"), "{stderr}");
    let listed: Vec<String> = harbor
        .api_calls()
        .into_iter()
        .filter(|(_, path, _)| path.contains("/repositories"))
        .map(|(_, path, status)| format!("{path} {status}"))
        .collect();
    assert_eq!(listed.len(), 2, "two pages of two: {listed:?}");
    assert!(listed[1].contains("page=2"), "{listed:?}");
    assert!(harbor.api_writes().is_empty());
}

#[test]
fn include_and_exclude_pick_repositories_by_their_path_below_the_namespace() {
    let registry = TestRegistry::start();
    seed(&registry, &REPOSITORIES);
    let harbor = HarborStandIn::start(&registry, &["team"], &[("u", "p", false)], 100);
    let (code, stdout, stderr) = config(
        &harbor_auth(&harbor.host, "u", "p"),
        &[
            "--from-registry",
            &format!("{}/team", harbor.host),
            "-t",
            "target.example.com",
            "--include",
            "^(api|web/|legacy/)",
            "--exclude",
            "old",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rules: Value = serde_json::from_str(&stdout).unwrap();
    let h = &harbor.host;
    assert_eq!(
        rules,
        json!({
            format!("{h}/team/api"): "target.example.com/api",
            format!("{h}/team/web/frontend"): "target.example.com/web/frontend",
        })
    );
    assert!(stderr.contains("left out 2"), "{stderr}");

    // A bad expression is bad input, named.
    let (code, _, stderr) = config(
        &harbor_auth(&harbor.host, "u", "p"),
        &[
            "--from-registry",
            &format!("{}/team", harbor.host),
            "-t",
            "t.io/x",
            "--exclude",
            "(",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--exclude \"(\""), "{stderr}");
}

#[test]
fn refused_credentials_and_empty_projects_name_the_api_and_its_answer() {
    let registry = TestRegistry::start();
    seed(&registry, &REPOSITORIES);
    let harbor = HarborStandIn::start(
        &registry,
        &["team", "empty"],
        &[("u", "right-password", false)],
        100,
    );
    let (code, stdout, stderr) = config(
        &harbor_auth(&harbor.host, "u", "wrong-password"),
        &[
            "--from-registry",
            &format!("{}/team", harbor.host),
            "-t",
            "t.io/x",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "GET http://{}/api/v2.0/projects/team/repositories answered HTTP 401: UNAUTHORIZED",
            harbor.host
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password"), "{stderr}");

    let (code, _, stderr) = config(
        &harbor_auth(&harbor.host, "u", "right-password"),
        &[
            "--from-registry",
            &format!("{}/empty", harbor.host),
            "-t",
            "t.io/x",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("/api/v2.0/projects/empty/repositories: no repositories under"),
        "{stderr}"
    );

    let (code, _, stderr) = config(
        &harbor_auth(&harbor.host, "u", "right-password"),
        &[
            "--from-registry",
            &format!("{}/nope", harbor.host),
            "-t",
            "t.io/x",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 404: NOT_FOUND project nope not found"),
        "{stderr}"
    );
}

#[test]
fn a_plain_registry_is_listed_through_its_catalog() {
    let registry = TestRegistry::start();
    seed(&registry, &REPOSITORIES);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("images.json");
    let (code, _, stderr) = config(
        &json!({ registry.host.clone(): { "insecure": true } }),
        &[
            "--from-registry",
            &format!("{}/team", registry.host),
            "-t",
            "t.io/mirror",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("(distribution: GET http://"), "{stderr}");
    assert!(stderr.contains("/v2/_catalog)"), "{stderr}");
    let rules: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let h = &registry.host;
    assert_eq!(
        rules,
        json!({
            format!("{h}/team/api"): "t.io/mirror/api",
            format!("{h}/team/legacy/old-api"): "t.io/mirror/legacy/old-api",
            format!("{h}/team/web/frontend"): "t.io/mirror/web/frontend",
            format!("{h}/team/worker"): "t.io/mirror/worker",
        }),
        "team-x/other is not under team/"
    );
}

/// What a small API server answers: given its own base URL and a request target (path and
/// query), the JSON body, or `None` for a 404.
type Pages = dyn Fn(&str, &str) -> Option<Value> + Send + Sync;

/// A small HTTP server answering with `pages`; its base URL.
fn api_server(pages: Box<Pages>) -> String {
    use std::io::BufReader;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Ok(Some(request)) = support::http1::Request::read(&mut reader) else {
                continue;
            };
            let mut out = stream;
            let json = [("Content-Type", "application/json")];
            let _ = match pages(&own, &request.target) {
                Some(body) => {
                    support::http1::respond(&mut out, 200, &json, body.to_string().as_bytes(), true)
                }
                None => support::http1::respond(
                    &mut out,
                    404,
                    &json,
                    br#"{"detail":"object not found"}"#,
                    true,
                ),
            };
        }
    });
    base
}

#[test]
fn docker_hub_and_quay_are_listed_through_their_own_apis_page_by_page() {
    // Docker Hub: pages linked by `next` (an absolute URL on the API), anonymous.
    let hub = api_server(Box::new(|base, target| match target {
        "/v2/namespaces/team/repositories?page_size=100" => Some(json!({
            "count": 3,
            "next": format!("{base}/v2/namespaces/team/repositories?page=2&page_size=100"),
            "results": [{"name": "web", "namespace": "team"}, {"name": "api", "namespace": "team"}],
        })),
        "/v2/namespaces/team/repositories?page=2&page_size=100" => Some(json!({
            "count": 3, "next": null, "results": [{"name": "db", "namespace": "team"}],
        })),
        _ => None,
    }));
    let (code, stdout, stderr) = config(
        &json!({"docker.io": {"api": hub}}),
        &[
            "--from-registry",
            "docker.io/team",
            "-t",
            "t.io/mirror",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({
            "docker.io/team/api": "t.io/mirror/api",
            "docker.io/team/db": "t.io/mirror/db",
            "docker.io/team/web": "t.io/mirror/web",
        })
    );
    assert!(stderr.contains("(dockerhub: GET http://"), "{stderr}");

    // Quay: pages linked by `next_page` tokens.
    let quay = api_server(Box::new(|_, target| match target {
        "/api/v1/repository?namespace=org" => Some(json!({
            "repositories": [{"namespace": "org", "name": "a"}], "next_page": "tok 2",
        })),
        "/api/v1/repository?namespace=org&next_page=tok%202" => Some(json!({
            "repositories": [{"namespace": "org", "name": "b"}],
        })),
        _ => None,
    }));
    let (code, stdout, stderr) = config(
        &json!({"quay.io": {"api": quay}}),
        &["--from-registry", "quay.io/org", "-t", "t.io/m", "-o", "-"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({"quay.io/org/a": "t.io/m/a", "quay.io/org/b": "t.io/m/b"})
    );

    // A namespace the API does not know: the API and its answer are named.
    let (code, _, stderr) = config(
        &json!({"docker.io": {"api": hub}}),
        &[
            "--from-registry",
            "docker.io/nobody",
            "-t",
            "t.io/m",
            "-o",
            "-",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "GET {hub}/v2/namespaces/nobody/repositories answered HTTP 404: object not found"
        )),
        "{stderr}"
    );
}
