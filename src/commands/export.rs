//! `image-migrator export --to oci:DIR`: `sync`'s stages with an OCI image layout as the
//! target end. Planned exactly as `sync` plans (same files, filters, `--platform`,
//! `--referrers`, shards); each image is stored under its full source reference, and the
//! sidecar records where its rule sends it, for `import` on the other side of the gap.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use super::Outcome;
use super::sync::{Ran, Spooled, SyncSettings, connect, copy, finish, log_start};
use crate::cli::ExportArgs;
use crate::copy::{Copier, Mode};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{Base, BundleImage, BundlePath, Layout, Sidecar, archive, sidecar};
use crate::plan::{self, Job, Plan};
use crate::progress::log;
use crate::report::{ImageResult, Status};
use crate::threads::Threads;

/// `image-migrator export`.
pub fn export(args: &ExportArgs, cancelled: Arc<AtomicBool>) -> Outcome {
    let started = (SystemTime::now(), Instant::now());
    let Some((bundle, base)) = destination(args) else {
        return Outcome::InvalidInput;
    };
    let settings = match SyncSettings::from_args(&args.sync) {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    if settings.prune.enabled {
        log(
            "error: --prune: export writes a bundle, not a mirror (give --prune to sync); nothing was copied",
        );
        return Outcome::InvalidInput;
    }
    if settings.create_targets {
        log(
            "error: --create-targets: export writes no registry (give it to import); nothing was copied",
        );
        return Outcome::InvalidInput;
    }
    let dry_run = settings.copy.mode == Mode::DryRun;
    let layout = match open_layout(&bundle, dry_run) {
        Ok(layout) => layout.with_base(left_out(base.as_ref())),
        Err(e) => {
            log(&format!("error: --to {}: {e}; nothing was copied", args.to));
            return Outcome::InvalidInput;
        }
    };
    let Some(client) = connect(&settings, cancelled) else {
        return Outcome::InvalidInput;
    };
    log_start(&settings);
    log(&format!("exporting to {}", args.to));
    let threads = Threads::new(settings.copy.threads);
    let mut plan = plan::plan(&client, &threads, &settings.rules, &settings.plan_options());
    let recorded = into_layout(&mut plan);
    let copier = Copier::between(&client, &layout, client.transport(), settings.copy.clone());
    let (results, _) = copy(&settings, &copier, &mut plan, |job, result| {
        result.target = format!("{}:{}", args.to, job.target);
        name_pinned(&layout, job, result);
    });
    let sealed = Seal {
        bundle: &bundle,
        layout: &layout,
        settings: &settings,
        base: base.map(|b| (b, args.base.clone().unwrap_or_default())),
    };
    let sealed = dry_run
        || sealed
            .seal(recorded, &results)
            .map_err(|e| log(&format!("error: --to {}: {e}", args.to)))
            .is_ok();
    let ran = Ran {
        plan,
        targets: Vec::new(),
        results,
        pruned: Vec::new(),
    };
    match finish(&settings, &client, ran, started) {
        _ if !sealed => Outcome::Failed,
        outcome => outcome,
    }
}

/// The layout the export writes: the directory of `oci:DIR`, or for
/// `oci-archive:FILE` the directory `FILE.d` beside it, packed when the copy ends (and
/// kept when something failed, so that a run again moves only what is missing). A dry
/// run makes nothing.
fn open_layout(bundle: &BundlePath, dry_run: bool) -> Result<Layout> {
    let dir = match bundle {
        BundlePath::Directory(dir) => dir.clone(),
        BundlePath::Archive(file) => staging_dir(file),
    };
    if dry_run {
        Ok(Layout::at(&dir))
    } else {
        Layout::create(&dir)
    }
}

/// Where an archive's layout is built: `FILE.d`.
fn staging_dir(archive: &std::path::Path) -> std::path::PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".d");
    name.into()
}

/// `--to` and `--base` read; `None` after saying what is wrong with them.
fn destination(args: &ExportArgs) -> Option<(BundlePath, Option<Sidecar>)> {
    let bundle = match BundlePath::parse(&args.to) {
        Ok(bundle) => bundle,
        Err(message) => {
            log(&format!("error: --to {message}; nothing was copied"));
            return None;
        }
    };
    let base = match args.base.as_deref().map(sidecar::read_base).transpose() {
        Ok(base) => base,
        Err(message) => {
            log(&format!("error: --base {message}; nothing was copied"));
            return None;
        }
    };
    Some((bundle, base))
}

/// The blobs a base bundle's images used, by source repository: left out of a delta.
fn left_out(base: Option<&Sidecar>) -> HashMap<String, HashSet<Digest>> {
    let Some(base) = base else {
        return HashMap::new();
    };
    base.blobs_by_repository()
        .into_iter()
        .map(|(repository, blobs)| {
            let blobs = blobs.iter().filter_map(|b| Digest::parse(b).ok()).collect();
            (repository, blobs)
        })
        .collect()
}

/// What ends an export: the sidecar written; for an archive, the layout packed.
struct Seal<'a> {
    bundle: &'a BundlePath,
    layout: &'a Layout,
    settings: &'a SyncSettings,
    /// The base's sidecar and the `--base` given.
    base: Option<(Sidecar, String)>,
}

impl Seal<'_> {
    /// The sidecar written; for an archive, the layout packed, and its directory removed
    /// when every image made it.
    fn seal(self, recorded: Vec<BundleImage>, results: &Spooled) -> Result<()> {
        let layout = self.layout;
        self.record(recorded, results)?;
        let BundlePath::Archive(file) = self.bundle else {
            return Ok(());
        };
        archive::pack(layout, file)?;
        let complete = results
            .copied()
            .all(|r| matches!(r.status, Status::Copied | Status::Unchanged));
        if complete {
            std::fs::remove_dir_all(layout.root())
                .map_err(|e| Error::protocol(format!("{}: {e}", layout.root().display())))?;
        } else {
            log(&format!(
                "kept {} (not every image was exported): run again to finish the archive",
                layout.root().display()
            ));
        }
        Ok(())
    }

    /// The sidecar: the images now in the bundle, where their rules send them, the blobs
    /// each uses, and the base a delta needs.
    fn record(&self, planned: Vec<BundleImage>, results: &Spooled) -> Result<()> {
        let done: HashSet<String> = results
            .copied()
            .filter(|r| matches!(r.status, Status::Copied | Status::Unchanged))
            .map(|r| r.into_owned().source)
            .collect();
        let named: HashMap<String, Digest> = (self.layout.images()?.into_iter())
            .map(|entry| (entry.name, entry.digest))
            .collect();
        let mut images = Vec::new();
        for mut image in planned {
            if !done.contains(image.source.as_str()) {
                continue;
            }
            if let Some(digest) = named.get(&image.source) {
                let blobs = self.layout.tree_blobs(digest)?;
                image.blobs = blobs.iter().map(ToString::to_string).collect();
            }
            images.push(image);
        }
        let base = self.base.as_ref().map(|(sidecar, given)| Base {
            id: sidecar.id.clone(),
            given: given.clone(),
            blobs: sidecar.blobs_by_repository(),
        });
        let shown = &self.settings.shown;
        self.layout.record(|sidecar| {
            sidecar.tool_version = env!("CARGO_PKG_VERSION").into();
            sidecar.images_file = shown.images_file.clone();
            sidecar.default_registry = shown.default_registry.clone();
            sidecar.default_namespace = shown.default_namespace.clone();
            sidecar.referrers |= shown.referrers;
            sidecar.base = base;
            sidecar.add(images);
        })
    }
}

/// Points every job at the layout: the image keeps its source's name there. Returns what
/// the sidecar records of each: where its rule sends it.
fn into_layout(plan: &mut Plan) -> Vec<BundleImage> {
    let mut images = Vec::with_capacity(plan.jobs.len());
    plan.jobs = (std::mem::take(&mut plan.jobs).into_iter())
        .map(|mut job| {
            let target = std::mem::replace(&mut job.target, job.source.clone());
            images.push(BundleImage {
                rule: job.rule.clone(),
                rule_line: job.rule_line,
                source: job.source.to_string(),
                target: target.to_string(),
                blobs: Vec::new(),
            });
            job
        })
        .collect();
    images
}

/// An image copied by digest (a `repo@sha256:…` rule) is named by that reference too,
/// so that the layout lists it.
fn name_pinned(layout: &Layout, job: &Job, result: &mut ImageResult) {
    let Some(digest) = &job.source.digest else {
        return;
    };
    if !matches!(result.status, Status::Copied | Status::Unchanged) {
        return;
    }
    if let Err(e) = layout.name_stored(&job.source.to_string(), digest) {
        result.status = Status::Failed;
        result.error = Some(crate::report::Failure {
            kind: e.kind,
            message: e.message,
            http_status: None,
        });
    }
}
