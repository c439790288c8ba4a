//! `--metrics FILE`: the run in the Prometheus text exposition format (which OpenMetrics
//! parsers read too), for node-exporter's textfile collector or a Pushgateway, so that a
//! scheduler can alert on a mirror that stopped being true. Rendering only; the command
//! writes the file.

use std::fmt::Write;

use super::{Report, Summary};

/// Every metric's name starts so.
const PREFIX: &str = "image_migrator";

/// The metrics of `report`; `succeeded` is whether the run exits 0.
pub fn prometheus_text<R>(report: &Report<R>, succeeded: bool) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let statuses = [
        ("copied", s.copied),
        ("unchanged", s.unchanged),
        ("failed", s.failed),
        ("would-copy", s.would_copy),
        ("cancelled", s.cancelled),
        ("drifted", s.drifted),
        ("immutable", s.immutable),
    ];
    family(
        &mut out,
        "images",
        "Images (source tag to target tag) of the last run, by status.",
        statuses.map(|(status, n)| (format!("status=\"{status}\""), n as f64)),
    );
    single(
        &mut out,
        "bytes_transferred",
        "Bytes copied by the last run.",
        s.bytes_transferred as f64,
    );
    family(
        &mut out,
        "blobs",
        "Blobs of the last run: transferred, mounted from another repository, already present.",
        blobs(s).map(|(how, n)| (format!("outcome=\"{how}\""), n as f64)),
    );
    single(
        &mut out,
        "pruned_tags",
        "Target tags deleted by --prune in the last run.",
        s.pruned as f64,
    );
    single(
        &mut out,
        "prune_failed_rules",
        "Rules whose target could not be pruned in the last run.",
        s.prune_failed as f64,
    );
    single(
        &mut out,
        "drifted_tags",
        "Target tags naming another image than the source's (--overwrite never) or kept immutable by the target.",
        (s.drifted + s.immutable) as f64,
    );
    single(
        &mut out,
        "duration_seconds",
        "How long the last run took.",
        report.duration_seconds,
    );
    let ended = humantime::parse_rfc3339(&report.finished_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs() as f64);
    single(
        &mut out,
        "last_run_timestamp_seconds",
        "When the last run ended, in seconds since the Unix epoch.",
        ended,
    );
    single(
        &mut out,
        "last_run_success",
        "1 when the last run exited 0, else 0.",
        if succeeded { 1.0 } else { 0.0 },
    );
    out
}

fn blobs(s: &Summary) -> [(&'static str, u64); 3] {
    [
        ("transferred", s.blobs_transferred),
        ("mounted", s.blobs_mounted),
        ("skipped", s.blobs_skipped),
    ]
}

/// A gauge with one sample per label set.
fn family(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, f64)>,
) {
    let _ = writeln!(out, "# HELP {PREFIX}_{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}_{name} gauge");
    for (labels, value) in samples {
        let _ = writeln!(out, "{PREFIX}_{name}{{{labels}}} {value}");
    }
}

/// A gauge with one sample.
fn single(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {PREFIX}_{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}_{name} gauge");
    let _ = writeln!(out, "{PREFIX}_{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_a_name_optional_labels_and_a_number() {
        let report = crate::report::fixtures::report(serde_json::json!({
            "total": 3, "copied": 2, "unchanged": 1, "failed": 0, "would_copy": 0,
            "cancelled": 0, "bytes_transferred": 10, "blobs_transferred": 2,
            "blobs_mounted": 0, "blobs_skipped": 1, "pruned": 4}));
        let text = prometheus_text(&report, true);
        assert!(
            text.contains("image_migrator_images{status=\"copied\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("image_migrator_pruned_tags 4\n"));
        assert!(text.contains("image_migrator_duration_seconds 100.5\n"));
        assert!(text.contains("image_migrator_last_run_timestamp_seconds 1767225700\n"));
        assert!(text.contains("image_migrator_last_run_success 1\n"));
    }
}
