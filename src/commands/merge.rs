//! `image-migrator report merge`: one report from the reports of several shards.

use super::{Outcome, print_summary, write_json};
use crate::report::Report;

/// `image-migrator report merge`.
pub fn merge_reports(args: &crate::cli::MergeArgs) -> Outcome {
    let mut reports = Vec::new();
    for path in &args.reports {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(report) if report.schema_version == crate::report::SCHEMA_VERSION => {
                reports.push(report)
            }
            Ok(report) => {
                eprintln!(
                    "error: {}: schema version {} is not {}",
                    path.display(),
                    report.schema_version,
                    crate::report::SCHEMA_VERSION
                );
                return Outcome::InvalidInput;
            }
            Err(e) => {
                eprintln!(
                    "error: {}: not an image-migrator report: {e}",
                    path.display()
                );
                return Outcome::InvalidInput;
            }
        }
    }
    let Some(merged) = crate::report::merge(reports) else {
        return Outcome::InvalidInput;
    };
    if let Err(e) = write_json(&args.output, &merged) {
        eprintln!("error: writing {}: {e}", args.output.display());
        return Outcome::Failed;
    }
    print_summary(&merged, &args.output);
    if merged.summary.failed + merged.summary.cancelled > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    }
}
