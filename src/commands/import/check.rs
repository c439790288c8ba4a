//! Before an import copies anything, each image's tree is checked whole in the bundle:
//! every manifest there, every blob there and hashing to its name. In a delta bundle a
//! blob the base carried may be absent: then the image's target repository must hold it
//! already (the base imported first), or the image fails naming the base and the digest.
//! A failed check turns the job into a failure; nothing of that image is pushed.

use std::collections::{HashMap, HashSet};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::RequestStats;
use crate::layout::{Base, Layout};
use crate::plan::{Job, Plan, RuleFailure};
use crate::registry::{Access, Client};
use crate::threads::Threads;

/// What the check needs: the bundle, its names, its base, and the target registries.
pub(super) struct BundleCheck<'a> {
    layout: &'a Layout,
    /// Image names in the bundle → their digests.
    names: &'a HashMap<String, Digest>,
    base: Option<Base>,
    /// The base's blobs by source repository.
    left_out: HashMap<String, HashSet<Digest>>,
    client: &'a Client,
}

impl<'a> BundleCheck<'a> {
    pub(super) fn new(
        layout: &'a Layout,
        names: &'a HashMap<String, Digest>,
        base: Option<Base>,
        client: &'a Client,
    ) -> Self {
        let left_out = base
            .iter()
            .flat_map(|base| base.blobs.iter())
            .map(|(repository, blobs)| {
                let blobs = blobs.iter().filter_map(|b| Digest::parse(b).ok()).collect();
                (repository.clone(), blobs)
            })
            .collect();
        BundleCheck {
            layout,
            names,
            base,
            left_out,
            client,
        }
    }

    /// Checks every job of the plan (on `threads`); a job that fails becomes a failure.
    pub(super) fn run(&self, threads: &Threads, plan: &mut Plan) {
        let jobs: Vec<Job> = std::mem::take(&mut plan.jobs).into_iter().collect();
        let checked = threads.map(&jobs, |job| self.check(job));
        for (job, result) in jobs.into_iter().zip(checked) {
            match result {
                Ok(()) => plan.jobs.push(job),
                Err(error) => plan.failures.push(RuleFailure {
                    rule: job.rule,
                    rule_line: job.rule_line,
                    source: job.source,
                    target: job.target,
                    error,
                    attempts: 1,
                }),
            }
        }
    }

    /// One image: its tree whole in the bundle, and what the base carried in the target.
    fn check(&self, job: &Job) -> Result<()> {
        let source = job.source.to_string();
        let Some(digest) = self.names.get(&source) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{source} is not in the bundle"),
            ));
        };
        let in_base = |blob: &Digest| {
            (self.left_out.get(&job.source.name())).is_some_and(|blobs| blobs.contains(blob))
        };
        let said = |e: Error| Error {
            message: format!(
                "{source} ({digest}): {}; nothing of it was pushed",
                e.message
            ),
            ..e
        };
        let missing = self.layout.check_complete(digest, &in_base).map_err(said)?;
        if missing.is_empty() {
            return Ok(());
        }
        let target = self
            .client
            .repo(&job.target.registry, &job.target.repository, Access::Pull);
        let stats = RequestStats::default();
        for blob in missing {
            if !target.blob_exists(&blob, &stats)? {
                let base = self.base.as_ref().expect("blobs left out only with a base");
                return Err(said(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "this delta needs its base bundle {} ({}) imported first: blob {blob} \
                         is not in {}/{}",
                        base.id, base.given, job.target.registry, job.target.repository
                    ),
                )));
            }
        }
        Ok(())
    }
}
