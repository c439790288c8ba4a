use super::*;

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn digest(n: u8) -> Digest {
    Digest::sha256_of(&[n])
}

#[test]
fn only_what_no_rule_keeps_is_a_candidate_and_protection_wins() {
    let protect = vec![TagRegex::new("^release-").unwrap()];
    let got = candidates(
        &tags(&["1.0", "1.1", "old", "release-3", "gone"]),
        &set(&["1.0", "1.1"]),
        &protect,
        false,
    );
    assert_eq!(got.prune, tags(&["gone", "old"]));
    assert_eq!(got.protected, tags(&["release-3"]));
}

#[test]
fn with_referrers_their_tags_go_only_with_a_subject() {
    let fallback = format!("sha256-{}", "a".repeat(64));
    let sig = format!("{fallback}.sig");
    let target = vec!["old".to_string(), fallback.clone(), sig.clone()];
    assert_eq!(
        candidates(&target, &set(&[]), &[], true).prune,
        tags(&["old"])
    );
    let without = candidates(&target, &set(&[]), &[], false).prune;
    assert_eq!(
        without.len(),
        3,
        "without --referrers they are ordinary tags"
    );
}

#[test]
fn more_than_max_prune_refuses() {
    assert_eq!(over_limit(50, 50), None);
    let refusal = over_limit(51, 50).unwrap();
    assert!(refusal.contains("51 tag(s)") && refusal.contains("--max-prune 50"));
}

#[test]
fn a_digest_a_staying_tag_shares_is_kept_with_the_reason() {
    let pruning = vec![
        ("old".to_string(), digest(1)),
        ("older".to_string(), digest(1)),
        ("alias".to_string(), digest(2)),
    ];
    let staying = vec![("latest".to_string(), digest(2))];
    let (deletions, kept) = by_digest(&pruning, &staying);
    assert_eq!(deletions, vec![(digest(1), tags(&["old", "older"]))]);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "alias");
    assert!(kept[0].1.contains("kept tag latest"), "{}", kept[0].1);
}

#[test]
fn referrer_tags_of_pruned_digests_unless_still_named() {
    let gone = digest(1);
    let stays = digest(2);
    let hex = |d: &Digest| d.as_str().trim_start_matches("sha256:").to_string();
    let target = vec![
        format!("sha256-{}", hex(&gone)),
        format!("sha256-{}.sig", hex(&gone)),
        format!("sha256-{}.sig", hex(&stays)),
        "v1".to_string(),
    ];
    let staying: BTreeSet<Digest> = [stays.clone()].into();
    let got = referrer_tags_of(&target, &[gone.clone(), stays], &staying);
    assert_eq!(got, target[..2].to_vec());
}

mod repos {
    use super::*;
    use crate::plan::{Job, Jobs, RuleFailure, TagCount};
    use crate::reference::Reference;

    fn rule(key: &str, line: usize, target: &str, selection: TagSelection) -> Rule {
        let mut target = Reference::parse(target).unwrap();
        target.tag = None;
        Rule {
            key: key.into(),
            raw_target: String::new(),
            line,
            source: Reference::parse(&format!("src.example/{key}")).unwrap(),
            target,
            selection,
            filters: Default::default(),
        }
    }

    fn job(rule: &Rule, tag: &str) -> Job {
        Job {
            rule: rule.key.clone(),
            rule_line: rule.line,
            source: rule.source.with_tag(tag),
            target: rule.target.with_tag(tag),
            trusted: false,
        }
    }

    fn count(rule: &Rule, selected: usize) -> TagCount {
        TagCount {
            rule: rule.key.clone(),
            rule_line: rule.line,
            source: rule.source.name(),
            tags_listed: selected,
            tags_selected: selected,
        }
    }

    #[test]
    fn two_rules_on_one_target_keep_what_either_selects() {
        let a = rule("ns/a", 2, "dst.example/mirror/app", TagSelection::All);
        let b = rule("ns/b", 3, "dst.example/mirror/app", TagSelection::All);
        let pinned = rule(
            "ns/c",
            4,
            "dst.example/mirror/app",
            TagSelection::Tag("9".into()),
        );
        let plan = Plan {
            jobs: Jobs::from_iter([job(&a, "1"), job(&b, "2"), job(&pinned, "9")]),
            tag_counts: vec![count(&a, 1), count(&b, 1)],
            ..Plan::default()
        };
        let repos = target_repos(&[a, b, pinned], &plan, None);
        assert_eq!(repos.len(), 1);
        assert_eq!(repos[0].owners.len(), 2);
        assert_eq!(repos[0].kept, set(&["1", "2", "9"]));
        assert_eq!(repos[0].blocked, None);
    }

    #[test]
    fn a_failed_listing_an_empty_selection_or_a_failed_copy_blocks() {
        let a = rule("ns/a", 2, "dst.example/m/a", TagSelection::All);
        let b = rule("ns/b", 3, "dst.example/m/b", TagSelection::All);
        let c = rule("ns/c", 4, "dst.example/m/c", TagSelection::All);
        let plan = Plan {
            jobs: Jobs::from_iter([job(&c, "1")]),
            failures: vec![RuleFailure {
                rule: a.key.clone(),
                rule_line: a.line,
                source: a.source.clone(),
                target: a.target.clone(),
                error: crate::error::Error::protocol("listing failed"),
                attempts: 1,
            }],
            tag_counts: vec![count(&b, 0), count(&c, 1)],
            ..Plan::default()
        };
        let mut repos = target_repos(&[a, b, c], &plan, None);
        block_failed_copies(&mut repos, &set(&["dst.example/m/c"]));
        let reasons: Vec<String> = repos.iter().map(|r| r.blocked.clone().unwrap()).collect();
        assert!(
            reasons[0].contains("failed before copying: listing failed"),
            "{}",
            reasons[0]
        );
        assert!(reasons[1].contains("selected no tags"));
        assert!(reasons[2].contains("failed"));
    }

    #[test]
    fn a_rule_in_another_shard_writing_the_target_blocks() {
        let shard: Shard = "1/2".parse().unwrap();
        let rules: Vec<Rule> = (0..40)
            .map(|i| {
                rule(
                    &format!("ns/r{i}"),
                    i + 2,
                    "dst.example/m/one",
                    TagSelection::All,
                )
            })
            .collect();
        let repos = target_repos(&rules, &Plan::default(), Some(shard));
        assert_eq!(repos.len(), 1);
        assert!(repos[0].blocked.as_ref().unwrap().contains("another shard"));
    }
}
