//! GitHub Actions integration, active when `GITHUB_ACTIONS=true`: masks resolved secrets,
//! groups log sections, turns configuration errors and failed images into `::error`
//! annotations, writes step outputs (`GITHUB_OUTPUT`) and a Markdown job summary
//! (`GITHUB_STEP_SUMMARY`).

use std::io::Write;
use std::path::Path;

use crate::config::ConfigErrors;
use crate::report::{ImageResult, Report, ResultSource, Status};

/// Failed images annotated individually; the rest are counted in one more annotation.
const MAX_ANNOTATIONS: usize = 10;
/// Rows in the job summary table before it points at the report instead.
const MAX_SUMMARY_ROWS: usize = 200;

/// Whether this process runs as a GitHub Actions step.
pub fn active() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Workflow commands go to stdout, where the runner reads them.
fn command(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// `::add-mask::` for every secret, before anything else is printed.
pub fn mask_secrets(secrets: &[&str]) {
    for secret in secrets {
        for line in secret.lines().filter(|l| !l.trim().is_empty()) {
            command(&format!("::add-mask::{}", escape_data(line)));
        }
    }
}

pub fn group(title: &str) {
    command(&format!("::group::{}", escape_data(title)));
}

pub fn end_group() {
    command("::endgroup::");
}

/// One annotation per configuration problem, pointing at its file and line.
pub fn annotate_config_errors(errors: &ConfigErrors) {
    for error in &errors.0 {
        let mut properties = format!(
            "file={}",
            escape_property(&error.file.display().to_string())
        );
        if let Some(line) = error.line {
            properties.push_str(&format!(",line={line}"));
        }
        properties.push_str(",title=image-migrator configuration");
        let message = match &error.key {
            Some(key) => format!("{key:?}: {}", error.message),
            None => error.message.clone(),
        };
        command(&format!("::error {properties}::{}", escape_data(&message)));
    }
}

/// Annotations for the first failed images.
pub fn annotate_failures<R: ResultSource>(report: &Report<R>) {
    let failed = report.results.each().filter(|r| r.status == Status::Failed);
    let mut more = 0;
    for (n, result) in failed.enumerate() {
        if n >= MAX_ANNOTATIONS {
            more += 1;
            continue;
        }
        let message = result
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or("failed");
        command(&format!(
            "::error title={}::{}",
            escape_property(&format!("{} → {}", result.source, result.target)),
            escape_data(message)
        ));
    }
    if more > 0 {
        command(&format!(
            "::error title=image-migrator::{more} more image(s) failed; see the report"
        ));
    }
}

/// Step outputs: report path and counts.
pub fn write_outputs<R>(report: &Report<R>, report_path: &Path) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let s = &report.summary;
    let text = format!(
        "report={}\ntotal={}\ncopied={}\nunchanged={}\nfailed={}\nwould_copy={}\ncancelled={}\n\
         drifted={}\nimmutable={}\npruned={}\n",
        report_path.display(),
        s.total,
        s.copied,
        s.unchanged,
        s.failed,
        s.would_copy,
        s.cancelled,
        s.drifted,
        s.immutable,
        s.pruned
    );
    append(Path::new(&path), &text)
}

/// The Markdown job summary.
pub fn write_summary<R: ResultSource>(
    report: &Report<R>,
    report_path: &Path,
) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    append(
        Path::new(&path),
        &markdown_summary(report, report_path, MAX_SUMMARY_ROWS),
    )
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// A table of images and their status, failures first, cut at `max_rows`.
pub fn markdown_summary<R: ResultSource>(
    report: &Report<R>,
    report_path: &Path,
    max_rows: usize,
) -> String {
    let s = &report.summary;
    let mut out = format!(
        "## image-migrator{}\n\n| total | copied | unchanged | failed | would copy | cancelled | transferred |\n|---:|---:|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} | {} | {} |\n\n",
        if report.settings.dry_run {
            " (dry run)"
        } else {
            ""
        },
        s.total,
        s.copied,
        s.unchanged,
        s.failed,
        s.would_copy,
        s.cancelled,
        crate::progress::human_bytes(s.bytes_transferred)
    );
    if report.settings.referrers {
        out.push_str(&format!(
            "Referrers (signatures, SBOMs, attestations): {} {}, {} already in the target.\n\n",
            s.referrers_copied,
            if report.settings.dry_run {
                "would be copied"
            } else {
                "copied"
            },
            s.referrers_unchanged
        ));
    }
    let rows = first_rows(&report.results, max_rows);
    out.push_str("| status | source | target | detail |\n|---|---|---|---|\n");
    for result in &rows {
        let icon = match result.status {
            Status::Failed => "❌",
            Status::Cancelled => "⏹️",
            Status::Copied => "✅",
            Status::WouldCopy => "📝",
            Status::Unchanged => "➖",
            Status::Drifted => "↔️",
            Status::Immutable => "🔒",
        };
        let detail = match &result.error {
            Some(e) => e.message.clone(),
            None if result.referrers_copied > 0 => {
                format!("{} referrer(s)", result.referrers_copied)
            }
            None => String::new(),
        };
        out.push_str(&format!(
            "| {icon} {} | `{}` | `{}` | {} |\n",
            result.status.label(),
            result.source,
            result.target,
            escape_cell(&detail)
        ));
    }
    let total = report.results.count();
    if total > rows.len() {
        out.push_str(&format!(
            "\n{} more image(s) not shown; the full list is in the report `{}`.\n",
            total - rows.len(),
            report_path.display()
        ));
    }
    out
}

/// The summary table's rows: failures first, then cancelled, then the rest, each kind in
/// plan order, `max_rows` at most; read in one pass, holding no more than the rows shown.
fn first_rows<R: ResultSource>(results: &R, max_rows: usize) -> Vec<ImageResult> {
    let rank = |status: Status| match status {
        Status::Failed => 0,
        Status::Cancelled => 1,
        Status::Drifted | Status::Immutable => 2,
        Status::Copied | Status::WouldCopy => 2,
        Status::Unchanged => 3,
    };
    let mut by_rank: [Vec<ImageResult>; 4] = Default::default();
    for result in results.each() {
        let rank = rank(result.status);
        // Rows of a lower rank come first: with `max_rows` of them, none of this rank shows.
        let before: usize = by_rank[..rank].iter().map(Vec::len).sum();
        if before + by_rank[rank].len() < max_rows {
            by_rank[rank].push(result.into_owned());
        }
    }
    by_rank.into_iter().flatten().take(max_rows).collect()
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Workflow command data escaping.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command property escaping.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(n: usize, status: Status) -> crate::report::ImageResult {
        crate::report::ImageResult {
            rule: "r".into(),
            ..crate::report::fixtures::result(
                format!("src.io/ns/app:{n}"),
                format!("dst.io/ns/app:{n}"),
                status,
                "gone | really",
            )
        }
    }

    fn report_of(results: Vec<crate::report::ImageResult>) -> Report {
        Report {
            targets: Vec::new(),
            schema_version: 1,
            tool: "image-migrator".into(),
            tool_version: "0".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_seconds: 0.0,
            settings: crate::report::Settings {
                auth_file: None,
                images_file: "images.json".into(),
                default_registry: None,
                default_namespace: None,
                proc: 1,
                retries: 0,
                dry_run: false,
                force: false,
                overwrite: None,
                fail_on_drift: false,
                immutable_tags: None,
                ca_file: None,
                platforms: vec![],
                shard: None,
                referrers: false,
                prune: false,
                prune_protect: vec![],
                max_prune: None,
                request_timeout_seconds: 300.0,
                min_speed_bytes_per_second: 1024,
                min_speed_window_seconds: 60.0,
                limit_rate_bytes_per_second: None,
                chunk_size_bytes: None,
            },
            rules: Vec::new(),
            summary: crate::report::Summary::of(&results),
            results,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn summary_puts_failures_first_and_points_at_the_report_when_cut() {
        let mut results: Vec<_> = (0..5).map(|n| result(n, Status::Copied)).collect();
        results.push(result(9, Status::Failed));
        let report = report_of(results);
        let text = markdown_summary(&report, Path::new("out/report.json"), 3);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains("`"))
            .collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[0].contains("failed") && rows[0].contains("app:9"),
            "{text}"
        );
        assert!(rows[0].contains("gone \\| really"), "pipes escaped: {text}");
        assert!(
            text.contains("3 more image(s) not shown") && text.contains("out/report.json"),
            "{text}"
        );
        assert!(text.contains("| 6 | 5 | 0 | 1 |"), "{text}");
    }

    #[test]
    fn summary_counts_referrers_when_they_follow_their_images() {
        let mut signed = result(1, Status::Copied);
        signed.referrers_copied = 2;
        let mut unchanged = result(2, Status::Unchanged);
        unchanged.referrers_unchanged = 1;
        let mut report = report_of(vec![signed, unchanged]);
        let without = markdown_summary(&report, Path::new("r.json"), 10);
        assert!(!without.contains("Referrers"), "{without}");
        report.settings.referrers = true;
        let text = markdown_summary(&report, Path::new("r.json"), 10);
        assert!(
            text.contains(
                "Referrers (signatures, SBOMs, attestations): 2 copied, 1 already in the target."
            ),
            "{text}"
        );
        let row = text.lines().find(|l| l.contains("app:1`")).unwrap();
        assert!(row.ends_with("| 2 referrer(s) |"), "{text}");
    }

    #[test]
    fn escapes_workflow_command_text() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
    }
}
