//! The plan's jobs, stored small. A whole Harbor is 100,000 tags or more, and a plain
//! `Vec<Job>` holds seven strings per tag (the rule, both registries, both repositories,
//! both tags): about 460 bytes each, 45 MiB at 100,000 tags, before anything is copied.
//! Jobs of one rule share everything but their tags, so the strings every job of a rule
//! repeats are kept once (a [`Pair`]) and each job keeps only its own tag; a [`Job`] is
//! made whole when it is read.

use crate::digest::Digest;
use crate::reference::Reference;

use super::Job;

/// The jobs of a plan, in order.
#[derive(Debug, Default)]
pub struct Jobs {
    pairs: Vec<Pair>,
    entries: Vec<Entry>,
}

/// What the jobs of one rule share: the rule, and both repositories without tag or
/// digest.
#[derive(Debug, PartialEq, Eq)]
struct Pair {
    rule: String,
    rule_line: usize,
    source: Reference,
    target: Reference,
}

/// One job: its pair, and its source tag. A job whose target tag is not its source tag,
/// or that names a digest, keeps those apart (a digest rule, a renamed tag: one job per
/// rule, so their cost does not grow with the tags).
#[derive(Debug)]
struct Entry {
    pair: u32,
    trusted: bool,
    source_tag: Option<Box<str>>,
    rest: Option<Box<Rest>>,
}

#[derive(Debug)]
struct Rest {
    source_digest: Option<Digest>,
    target_tag: Option<String>,
    target_digest: Option<Digest>,
}

impl Jobs {
    /// Adds a job after the others.
    pub fn push(&mut self, job: Job) {
        let Job {
            rule,
            rule_line,
            mut source,
            mut target,
            trusted,
        } = job;
        let source_tag = source.tag.take();
        let source_digest = source.digest.take();
        let target_tag = target.tag.take();
        let target_digest = target.digest.take();
        let pair = Pair {
            rule,
            rule_line,
            source,
            target,
        };
        if self.pairs.last() != Some(&pair) {
            self.pairs.push(pair);
        }
        let rest = (source_digest.is_some() || target_digest.is_some() || target_tag != source_tag)
            .then(|| {
                Box::new(Rest {
                    source_digest,
                    target_tag,
                    target_digest,
                })
            });
        self.entries.push(Entry {
            pair: u32::try_from(self.pairs.len() - 1).expect("fewer than 2^32 rules"),
            trusted,
            source_tag: source_tag.map(String::into_boxed_str),
            rest,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `n`th job, whole.
    pub fn get(&self, n: usize) -> Job {
        let entry = &self.entries[n];
        let pair = &self.pairs[entry.pair as usize];
        let source_tag = entry.source_tag.as_deref().map(str::to_string);
        let (source_digest, target_tag, target_digest) = match &entry.rest {
            None => (None, source_tag.clone(), None),
            Some(rest) => (
                rest.source_digest.clone(),
                rest.target_tag.clone(),
                rest.target_digest.clone(),
            ),
        };
        Job {
            rule: pair.rule.clone(),
            rule_line: pair.rule_line,
            source: Reference {
                tag: source_tag,
                digest: source_digest,
                ..pair.source.clone()
            },
            target: Reference {
                tag: target_tag,
                digest: target_digest,
                ..pair.target.clone()
            },
            trusted: entry.trusted,
        }
    }

    /// The source registry of every job, in order (without making the jobs whole).
    pub fn source_registries(&self) -> impl Iterator<Item = &str> + '_ {
        (self.entries.iter()).map(|entry| self.pairs[entry.pair as usize].source.registry.as_str())
    }

    /// Every job, whole, in order.
    pub fn iter(&self) -> impl Iterator<Item = Job> + '_ {
        (0..self.len()).map(|n| self.get(n))
    }

    /// Gives back memory the vectors grew into and no longer need.
    pub fn shrink_to_fit(&mut self) {
        self.pairs.shrink_to_fit();
        self.entries.shrink_to_fit();
    }
}

impl IntoIterator for Jobs {
    type Item = Job;
    type IntoIter = IntoJobs;

    fn into_iter(self) -> IntoJobs {
        IntoJobs {
            jobs: self,
            next: 0,
        }
    }
}

/// The jobs of a plan taken one by one, whole.
pub struct IntoJobs {
    jobs: Jobs,
    next: usize,
}

impl Iterator for IntoJobs {
    type Item = Job;

    fn next(&mut self) -> Option<Job> {
        let job = (self.next < self.jobs.len()).then(|| self.jobs.get(self.next))?;
        self.next += 1;
        Some(job)
    }
}

impl FromIterator<Job> for Jobs {
    fn from_iter<I: IntoIterator<Item = Job>>(jobs: I) -> Self {
        let mut all = Jobs::default();
        jobs.into_iter().for_each(|job| all.push(job));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(source: &str, target: &str, rule: &str) -> Job {
        Job {
            rule: rule.to_string(),
            rule_line: 3,
            source: Reference::parse(source).unwrap(),
            target: Reference::parse(target).unwrap(),
            trusted: source.ends_with(":v2"),
        }
    }

    #[test]
    fn every_job_comes_back_as_it_went_in() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let jobs = [
            job("r.io/a/b:v1", "t.io/c/b:v1", "r.io/a/b"),
            job("r.io/a/b:v2", "t.io/c/b:v2", "r.io/a/b"),
            job("r.io/a/b:v1", "t.io/c/b:latest", "r.io/a/b:v1"),
            job(&format!("r.io/a/b@{digest}"), "t.io/c/b", "r.io/a/b@…"),
            job(&format!("r.io/a/b:v3@{digest}"), "t.io/c/b:v3", "x"),
            job("r.io/a/b:v4", "t.io/c/b:v4", "r.io/a/b"),
        ];
        let kept: Jobs = jobs.iter().cloned().collect();
        assert_eq!(kept.len(), jobs.len());
        assert_eq!(kept.iter().collect::<Vec<_>>(), jobs);
        assert!(
            kept.source_registries()
                .eq(jobs.iter().map(|j| j.source.registry.as_str()))
        );
        // The two runs of rule r.io/a/b are apart: each keeps its own pair.
        assert_eq!(kept.pairs.len(), 5);
    }

    #[test]
    fn a_job_of_a_whole_repository_costs_its_tag_and_little_more() {
        let mut jobs = Jobs::default();
        for n in 0..1000 {
            jobs.push(job(
                &format!("r.io/a/b:v{n}"),
                &format!("t.io/c/b:v{n}"),
                "r",
            ));
        }
        assert_eq!(jobs.pairs.len(), 1);
        assert!(jobs.entries.iter().all(|entry| entry.rest.is_none()));
        // An entry is a pair index, a flag and two pointers: 32 bytes, against 232 for
        // a `Job` (and its seven strings).
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert!(std::mem::size_of::<Job>() >= 7 * std::mem::size_of::<Entry>());
    }
}
