//! The integration tests: one binary (as ripgrep's `tests/tests.rs`), so they compile and
//! link once. Each module is one capability, named by what it proves; `support` is the
//! harness they share. All tests share this one process and run in parallel, so none sets
//! an environment variable or changes directory here: each gives its own environment and
//! directory to the binary it runs (`support::migrator`).
//!
//! Run one module with `cargo test --test it sync_pull_quota::`.

mod support;

// The air gap: export to an OCI layout, import from it.
mod airgap_archive;
mod airgap_delta;
mod airgap_export;
mod airgap_import;
mod airgap_interop;

// `sync`: what a migration copies, and how it talks to registries.
mod proxy_forward;
mod registry_concurrency_cap;
mod sync_all_tags;
mod sync_auth;
mod sync_create_targets;
mod sync_default_target;
mod sync_digest_source;
mod sync_drift;
mod sync_dry_run;
mod sync_failures;
mod sync_incremental;
mod sync_limit_rate;
mod sync_machine_credentials;
mod sync_metrics;
mod sync_multiarch;
mod sync_one_tag;
mod sync_pasted_flags;
mod sync_platform_filter;
mod sync_prune;
mod sync_pull_quota;
mod sync_referrers;
mod sync_report_order;
mod sync_sharded;
mod sync_shared_layers;
mod sync_tag_pagination;
mod sync_tag_selection;
mod sync_target_requests;
mod sync_trusted_tags;
mod tls_connections;
mod upload_chunked_fallback;

// The protocol rules easiest to get wrong, in process against `support::spec_registry`.
mod protocol_redirects;
mod protocol_tag_pagination;
mod protocol_upload_fallbacks;
mod protocol_upload_resume;
// Whole projects to and from cloud registries (stand-ins checking with the vendors' code).
mod cloud_ecr;
mod cloud_swr;

// Faults: broken networks, hostile servers, interruptions, secrets.
mod faults_hostile_registry;
mod faults_interrupt;
mod faults_mtls;
mod faults_no_deadlock;
mod faults_redirect;
mod faults_resume_download;
mod faults_secrets;
mod faults_silent_body;
mod faults_tls;
mod faults_token_auth;
mod faults_transient;

// `validate` and the input files; bad input never reaches the network.
mod bad_input_catalogue;
mod validate_auth;
mod validate_errors;
mod validate_image_syncer;
mod validate_kinds;
mod validate_rules;

// `config`: images.json from a Kubernetes cluster.
mod config_auth;
mod config_cluster;
mod config_from_file;
mod config_from_registry;

// What ships: the container image, the demo, the examples, the lint gate, releases.
mod cli_version;
mod report_schema;
mod ship_container_image;
mod ship_cronjob_example;
mod ship_demo;
mod ship_examples;
mod ship_lint;
mod ship_release;

// The code's own shape and its parsers.
mod module_dependencies;
mod parsers_properties;
mod support_smoke;

/// A file in tests/it/ that no `mod` names is never compiled, so its tests would silently
/// not run; a test file at the top of tests/ would be a binary of its own again.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(tests.join("it/main.rs")).unwrap();
    let rust_files = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".rs"))
            .collect();
        names.sort();
        names
    };
    let undeclared: Vec<String> = rust_files(&tests.join("it"))
        .into_iter()
        .filter(|name| name != "main.rs")
        .filter(|name| !main.contains(&format!("\nmod {};\n", name.trim_end_matches(".rs"))))
        .collect();
    assert!(
        undeclared.is_empty(),
        "tests/it/main.rs declares no `mod` for {undeclared:?}"
    );
    let top_level = rust_files(&tests);
    assert!(
        top_level.is_empty(),
        "move {top_level:?} into tests/it/ and declare it in tests/it/main.rs"
    );
}
