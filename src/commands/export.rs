//! `image-migrator export --to oci:DIR`: `sync`'s stages with an OCI image layout as the
//! target end. Planned exactly as `sync` plans (same files, filters, `--platform`,
//! `--referrers`, shards); each image is stored under its full source reference, and the
//! sidecar records where its rule sends it, for `import` on the other side of the gap.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use super::Outcome;
use super::sync::{SyncSettings, connect, copy, finish, log_start};
use crate::cli::ExportArgs;
use crate::copy::{Copier, Mode};
use crate::layout::{BundleImage, BundlePath, Layout, archive};
use crate::plan::{self, Job, Plan};
use crate::progress::log;
use crate::report::{ImageResult, Status};

/// `image-migrator export`.
pub fn export(args: &ExportArgs, cancelled: Arc<AtomicBool>) -> Outcome {
    let started = (SystemTime::now(), Instant::now());
    let bundle = match BundlePath::parse(&args.to) {
        Ok(bundle) => bundle,
        Err(message) => {
            log(&format!("error: --to {message}; nothing was copied"));
            return Outcome::InvalidInput;
        }
    };
    let settings = match SyncSettings::from_args(&args.sync) {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    let dry_run = settings.copy.mode == Mode::DryRun;
    let layout = match open_layout(&bundle, dry_run) {
        Ok(layout) => layout,
        Err(e) => {
            log(&format!("error: --to {}: {e}; nothing was copied", args.to));
            return Outcome::Failed;
        }
    };
    let Some((client, pool)) = connect(&settings, cancelled) else {
        return Outcome::InvalidInput;
    };
    log_start(&settings);
    log(&format!("exporting to {}", args.to));
    let mut plan = pool.install(|| {
        plan::plan(
            &client,
            &settings.rules,
            settings.copy.referrers,
            settings.shard,
        )
    });
    drop(pool);
    let recorded = into_layout(&mut plan);
    let copier = Copier::between(&client, &layout, client.transport(), settings.copy.clone());
    let outcomes = copy(&settings, &copier, &mut plan, |job, result| {
        result.target = format!("{}:{}", args.to, job.target);
        name_pinned(&layout, job, result);
    });
    if !dry_run && let Err(e) = seal(&bundle, &layout, &settings, recorded, &outcomes) {
        log(&format!("error: --to {}: {e}", args.to));
        return Outcome::Failed;
    }
    finish(&settings, &client, plan, Vec::new(), outcomes, started)
}

/// The layout the export writes: the directory of `oci:DIR`, or for
/// `oci-archive:FILE` the directory `FILE.d` beside it, packed when the copy ends (and
/// kept when something failed, so that a run again moves only what is missing). A dry
/// run makes nothing.
fn open_layout(bundle: &BundlePath, dry_run: bool) -> crate::error::Result<Layout> {
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

/// The sidecar written; for an archive, the layout packed, and its directory removed
/// when every image made it.
fn seal(
    bundle: &BundlePath,
    layout: &Layout,
    settings: &SyncSettings,
    recorded: Vec<BundleImage>,
    outcomes: &[ImageResult],
) -> crate::error::Result<()> {
    record(layout, settings, recorded, outcomes)?;
    let BundlePath::Archive(file) = bundle else {
        return Ok(());
    };
    archive::pack(layout, file)?;
    let complete = outcomes
        .iter()
        .all(|r| matches!(r.status, Status::Copied | Status::Unchanged));
    if complete {
        std::fs::remove_dir_all(layout.root()).map_err(|e| {
            crate::error::Error::protocol(format!("{}: {e}", layout.root().display()))
        })?;
    } else {
        log(&format!(
            "kept {} (not every image was exported): run again to finish the archive",
            layout.root().display()
        ));
    }
    Ok(())
}

/// Points every job at the layout: the image keeps its source's name there. Returns what
/// the sidecar records of each: where its rule sends it.
fn into_layout(plan: &mut Plan) -> Vec<BundleImage> {
    plan.jobs
        .iter_mut()
        .map(|job| {
            let target = std::mem::replace(&mut job.target, job.source.clone());
            BundleImage {
                rule: job.rule.clone(),
                rule_line: job.rule_line,
                source: job.source.to_string(),
                target: target.to_string(),
            }
        })
        .collect()
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
    let named = crate::end::Ends::open(
        layout,
        &job.source.registry,
        &job.source.repository,
        crate::end::Access::Pull,
    )
    .get_manifest(
        &crate::reference::TagOrDigest::Digest(digest.clone()),
        &Default::default(),
    )
    .and_then(|manifest| layout.name_manifest(&job.source.to_string(), &manifest));
    if let Err(e) = named {
        result.status = Status::Failed;
        result.error = Some(crate::report::Failure {
            kind: e.kind,
            message: e.message,
            http_status: None,
        });
    }
}

/// The sidecar: the images now in the bundle and where their rules send them.
fn record(
    layout: &Layout,
    settings: &SyncSettings,
    planned: Vec<BundleImage>,
    outcomes: &[ImageResult],
) -> crate::error::Result<()> {
    let done: std::collections::HashSet<&str> = outcomes
        .iter()
        .filter(|r| matches!(r.status, Status::Copied | Status::Unchanged))
        .map(|r| r.source.as_str())
        .collect();
    let images: Vec<BundleImage> = planned
        .into_iter()
        .filter(|image| done.contains(image.source.as_str()))
        .collect();
    layout.record(|sidecar| {
        sidecar.tool_version = env!("CARGO_PKG_VERSION").into();
        sidecar.images_file = settings.shown.images_file.clone();
        sidecar.default_registry = settings.shown.default_registry.clone();
        sidecar.default_namespace = settings.shown.default_namespace.clone();
        sidecar.add(images);
    })
}
