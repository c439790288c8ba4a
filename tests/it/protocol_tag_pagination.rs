//! Tag-list pagination as the distribution spec and real registries write it, without
//! Docker: a whole-repository rule against `support::spec_registry` follows every `Link`
//! (relative or absolute, `n`/`last` in either order, `last` alone, an opaque cursor, a
//! `rel="next"` among other links and parameters, a link past the end to an empty page),
//! asking for exactly the pages the links name and copying every tag; a link back to a
//! page already read fails the rule after three requests; and a list longer than the
//! tool's bound (`MAX_TAGS_PER_REPOSITORY`, 100 000 names) fails it, never truncates it.

use crate::support;

use support::spec_registry::{LinkStyle, Paging, SpecRegistry, Switches};
use support::sync::{RunResult, SyncRun};

const REPO: &str = "src/app";

/// A source with `count` tags (`t0`, `t1`…) of one image, paged by `paging`.
fn source(paging: Paging, count: usize) -> (SpecRegistry, Vec<String>) {
    let source = SpecRegistry::start(Switches {
        paging: Some(paging),
        ..Switches::default()
    });
    let image = source.push_image(REPO, "t0", &[b"one small layer".to_vec()]);
    let tags: Vec<String> = (0..count).map(|i| format!("t{i}")).collect();
    source.tag(REPO, tags.iter().cloned(), &image.digest);
    (source, tags)
}

/// `source/src/app` → `target/dst/app` with `args`.
fn sync_repo(source: &SpecRegistry, target: &SpecRegistry, args: &[&str]) -> RunResult {
    let mut run = SyncRun::new()
        .insecure(&source.host)
        .insecure(&target.host)
        .rule(
            &format!("{}/{REPO}", source.host),
            &format!("{}/dst/app", target.host),
        );
    for arg in args {
        run = run.arg(arg);
    }
    run.run()
}

/// The tag-list requests `registry` received, as `GET <target>`.
fn tag_requests(registry: &SpecRegistry) -> Vec<String> {
    registry.lines(|r| r.target.contains("/tags/list"))
}

/// Copies the whole repository paged as `style` says and checks every tag arrived,
/// byte for byte; returns the tag-list request targets the source received.
fn copies_every_tag(style: LinkStyle, count: usize, link_past_the_end: bool) -> Vec<String> {
    let paging = Paging {
        page_size: 3,
        style,
        link_past_the_end,
        loop_back: false,
    };
    let (source, tags) = source(paging, count);
    let target = SpecRegistry::start(Switches::default());
    let run = sync_repo(&source, &target, &[]);
    run.assert_all("copied");
    assert_eq!(run.count("copied"), count as u64, "{}", run.pretty());
    assert_eq!(target.tags("dst/app"), tags, "{style:?}");
    for tag in &tags {
        assert_eq!(target.manifest("dst/app", tag), source.manifest(REPO, tag));
    }
    tag_requests(&source)
        .into_iter()
        .map(|line| line.trim_start_matches("GET ").to_string())
        .collect()
}

fn list(query: &str) -> String {
    format!("/v2/{REPO}/tags/list?{query}")
}

#[test]
fn relative_links_with_last_before_n_are_followed_as_written() {
    let asked = copies_every_tag(LinkStyle::Relative, 7, false);
    assert_eq!(
        asked,
        [list("n=1000"), list("last=t2&n=3"), list("last=t5&n=3")]
    );
}

#[test]
fn absolute_links_with_n_before_last_are_followed_as_written() {
    let asked = copies_every_tag(LinkStyle::Absolute, 7, false);
    assert_eq!(
        asked,
        [list("n=1000"), list("n=3&last=t2"), list("n=3&last=t5")]
    );
}

#[test]
fn a_link_with_last_and_no_n_gets_the_servers_page_size() {
    let asked = copies_every_tag(LinkStyle::LastOnly, 8, false);
    assert_eq!(asked, [list("n=1000"), list("last=t2"), list("last=t5")]);
}

#[test]
fn an_opaque_cursor_is_passed_back_untouched() {
    let asked = copies_every_tag(LinkStyle::Cursor, 7, false);
    let cursor = |tag: &str| list(&format!("n=3&next_page={}", hex::encode(tag)));
    assert_eq!(asked, [list("n=1000"), cursor("t2"), cursor("t5")]);
}

#[test]
fn rel_next_is_found_among_other_links_and_parameters() {
    // `Link: </…?n=3>; rel="first", </…?last=t2&n=3>; type="…"; rel="next"; title="more"`:
    // the `first` link is never followed.
    let asked = copies_every_tag(LinkStyle::AmongOthers, 7, false);
    assert_eq!(
        asked,
        [list("n=1000"), list("last=t2&n=3"), list("last=t5&n=3")]
    );
}

#[test]
fn a_link_past_the_end_to_an_empty_page_ends_the_list() {
    // Six tags in pages of three: the second page is full and still links on, to a page
    // with `"tags": []` and no link.
    let asked = copies_every_tag(LinkStyle::Relative, 6, true);
    assert_eq!(
        asked,
        [list("n=1000"), list("last=t2&n=3"), list("last=t5&n=3")]
    );
}

#[test]
fn a_link_back_to_a_page_already_read_fails_without_spinning() {
    // Page 3 links back to page 2, written as an absolute URL where page 1 wrote it as a
    // path: the same page all the same.
    let paging = Paging {
        page_size: 3,
        style: LinkStyle::Relative,
        link_past_the_end: false,
        loop_back: true,
    };
    let (source, _) = source(paging, 7);
    let target = SpecRegistry::start(Switches::default());
    let run = sync_repo(&source, &target, &["--retries", "1"]);
    run.assert_code(1);
    let result = &run.results()[0];
    assert_eq!(result["status"], "failed", "{}", run.pretty());
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("pagination loops"), "{message}");
    assert!(message.contains("last=t2&n=3"), "names the page: {message}");
    assert_eq!(
        tag_requests(&source),
        [
            format!("GET {}", list("n=1000")),
            format!("GET {}", list("last=t2&n=3")),
            format!("GET {}", list("last=t5&n=3")),
        ],
        "each page once, then the loop is seen"
    );
    assert!(
        source
            .lines(|r| r.target.contains("/manifests/"))
            .is_empty(),
        "nothing of a half-listed repository is copied"
    );
    assert!(target.tags("dst/app").is_empty());
}

#[test]
fn more_tags_than_the_bound_is_an_error_not_a_truncation() {
    // 100 001 names, one more than MAX_TAGS_PER_REPOSITORY (src/http/bounds.rs): the first
    // page answers the tool's n=1000, the others 10 000 each.
    let paging = Paging {
        page_size: 10_000,
        style: LinkStyle::Relative,
        link_past_the_end: false,
        loop_back: false,
    };
    let source = SpecRegistry::start(Switches {
        paging: Some(paging),
        ..Switches::default()
    });
    let image = source.push_image(REPO, "t000000", &[b"layer".to_vec()]);
    source.tag(
        REPO,
        (0..=100_000).map(|i| format!("t{i:06}")),
        &image.digest,
    );
    let target = SpecRegistry::start(Switches::default());
    let run = sync_repo(&source, &target, &["--retries", "1"]);
    run.assert_code(1);
    let result = &run.results()[0];
    assert_eq!(result["status"], "failed", "{}", run.pretty());
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("more than 100000 tags"), "{message}");
    // 1 000 + 9 × 10 000 = 91 000 names after ten pages; the eleventh holds the other
    // 9 001, and the total is over the bound: no more pages, nothing copied.
    let asked = tag_requests(&source);
    assert_eq!(asked.len(), 11, "{asked:#?}");
    assert_eq!(asked[0], format!("GET {}", list("n=1000")));
    assert_eq!(asked[1], format!("GET {}", list("last=t000999&n=10000")));
    assert_eq!(asked[10], format!("GET {}", list("last=t090999&n=10000")));
    assert!(
        source
            .lines(|r| r.target.contains("/manifests/"))
            .is_empty()
    );
    assert!(target.lines(|r| r.method == "PUT").is_empty());
}
