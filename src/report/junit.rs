//! `--junit FILE`: the JUnit XML GitLab shows in merge requests, one test case per source →
//! target tag, failures carrying the error. Written as the results are read, one at a
//! time (a run's results are spooled, not held), in the layout quick-junit wrote before:
//! the counts first, in a pass of their own. Rendering only; the command opens the file.

use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{ImageResult, Report, ResultSource, Status};

/// The JUnit XML of `report`, written to `out`.
pub fn write_junit<R: ResultSource>(report: &Report<R>, out: impl Write) -> std::io::Result<()> {
    let (tests, failures) = report.results.each().fold((0, 0), |(tests, failures), r| {
        (tests + 1, failures + usize::from(failed(&r)))
    });
    let (tests, failures) = (tests.to_string(), failures.to_string());
    let mut xml = Writer::new_with_indent(out, b' ', 4);
    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut suites = BytesStart::new("testsuites");
    suites.extend_attributes([
        ("name", "image-migrator"),
        ("tests", &tests),
        ("failures", &failures),
        ("errors", "0"),
    ]);
    xml.write_event(Event::Start(suites))?;
    let mut suite = BytesStart::new("testsuite");
    suite.extend_attributes([
        ("name", "image-migrator"),
        ("tests", &tests),
        ("disabled", "0"),
        ("errors", "0"),
        ("failures", &failures),
    ]);
    xml.write_event(Event::Start(suite))?;
    for result in report.results.each() {
        test_case(&result, &mut xml)?;
    }
    xml.write_event(Event::End(BytesEnd::new("testsuite")))?;
    xml.write_event(Event::End(BytesEnd::new("testsuites")))?;
    xml.write_event(Event::Eof)?;
    // A newline at the end.
    xml.write_indent()
}

fn failed(result: &ImageResult) -> bool {
    matches!(result.status, Status::Failed | Status::Cancelled)
}

/// `<testcase name="SOURCE -> TARGET" classname="RULE" time="S">`, with a `<failure>`
/// carrying the error (its kind as the type) when the image failed or was cancelled.
fn test_case(result: &ImageResult, xml: &mut Writer<impl Write>) -> std::io::Result<()> {
    let mut case = BytesStart::new("testcase");
    case.extend_attributes([
        (
            "name",
            format!("{} -> {}", result.source, result.target).as_str(),
        ),
        ("classname", &result.rule),
        ("time", &format!("{:.3}", result.duration_seconds)),
    ]);
    xml.write_event(Event::Start(case))?;
    if failed(result) {
        let message = result
            .error
            .as_ref()
            .map_or(result.status.label(), |e| e.message.as_str());
        let kind = result
            .error
            .as_ref()
            .map_or("Cancelled".to_string(), |e| format!("{:?}", e.kind));
        let mut failure = BytesStart::new("failure");
        failure.extend_attributes([("message", message), ("type", &kind)]);
        xml.write_event(Event::Start(failure))?;
        xml.write_event(Event::Text(BytesText::new(message)))?;
        xml.write_event(Event::End(BytesEnd::new("failure")))?;
    }
    xml.write_event(Event::End(BytesEnd::new("testcase")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What quick-junit wrote for `report` (the renderer before results were spooled).
    fn quick_junit_xml(report: &Report) -> String {
        use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new("image-migrator");
        for result in report.results.each() {
            let name = format!("{} -> {}", result.source, result.target);
            let status = match (&result.status, &result.error) {
                (Status::Failed | Status::Cancelled, error) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let message = error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_else(|| result.status.label().to_string());
                    if let TestCaseStatus::NonSuccess {
                        message: m,
                        ty,
                        description,
                        ..
                    } = &mut status
                    {
                        *m = Some(message.clone().into());
                        *ty = Some(
                            error
                                .as_ref()
                                .map(|e| format!("{:?}", e.kind))
                                .unwrap_or_else(|| "Cancelled".into())
                                .into(),
                        );
                        *description = Some(message.into());
                    }
                    status
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(name, status);
            case.set_classname(result.rule.clone());
            case.set_time(std::time::Duration::from_secs_f64(result.duration_seconds));
            suite.add_test_case(case);
        }
        let mut junit = JUnit::new("image-migrator");
        junit.add_test_suite(suite);
        junit.to_string().expect("JUnit XML serialises")
    }

    fn result(n: usize, status: Status, message: &str) -> ImageResult {
        ImageResult {
            rule: format!("src.io/ns/app{n}"),
            rule_line: n,
            duration_seconds: 1.23456 * n as f64,
            ..crate::report::fixtures::result(
                format!("src.io/ns/app{n}:{n}"),
                format!("dst.io/ns/app{n}:{n}"),
                status,
                message,
            )
        }
    }

    #[test]
    fn the_streamed_junit_is_what_quick_junit_wrote() {
        let mut report = crate::report::fixtures::report(serde_json::json!({
            "total": 0, "copied": 0, "unchanged": 0, "failed": 0, "would_copy": 0,
            "cancelled": 0, "bytes_transferred": 0, "blobs_transferred": 0,
            "blobs_mounted": 0, "blobs_skipped": 0}));
        let mut written = Vec::new();
        write_junit(&report, &mut written).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            quick_junit_xml(&report)
        );
        report.results = vec![
            result(1, Status::Copied, ""),
            result(
                2,
                Status::Failed,
                "manifest <unknown> & \"gone\"\nsecond line",
            ),
            result(3, Status::Cancelled, ""),
            result(4, Status::Unchanged, ""),
            result(5, Status::Drifted, ""),
        ];
        let mut written = Vec::new();
        write_junit(&report, &mut written).unwrap();
        let written = String::from_utf8(written).unwrap();
        assert_eq!(written, quick_junit_xml(&report));
        assert!(written.contains("tests=\"5\" failures=\"2\""), "{written}");
    }
}
