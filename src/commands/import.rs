//! `image-migrator import --from oci:DIR`: `sync`'s stages with an OCI image layout as
//! the source end. The jobs are the bundle's recorded images and targets (or, with
//! `--images`, the rules of that file over the bundle's images); before the copy, each
//! image's tree is checked whole in the bundle, so that an image missing a blob fails
//! naming it and nothing of it is pushed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

mod check;

use check::BundleCheck;

use super::sync::{Ran, SyncSettings, connect, copy, finish, log_start};
use super::{Files, Outcome};
use crate::cli::ImportArgs;
use crate::copy::{Copier, Mode};
use crate::digest::Digest;
use crate::layout::{self, BundlePath, Layout, Sidecar};
use crate::plan::{self, Job, Plan};
use crate::progress::log;
use crate::reference::Reference;
use crate::threads::Threads;

/// `image-migrator import`.
pub fn import(args: &ImportArgs, cancelled: Arc<AtomicBool>) -> Outcome {
    let started = (SystemTime::now(), Instant::now());
    let Some((layout, sidecar)) = open_bundle(args) else {
        return Outcome::InvalidInput;
    };
    let which = if args.rules_given {
        Files::AuthAndRules
    } else {
        Files::AuthOnly
    };
    let mut settings = match SyncSettings::reading(&args.sync, which) {
        Ok(settings) => settings,
        Err(outcome) => return outcome,
    };
    if settings.prune.enabled {
        log(
            "error: --prune: import adds a bundle's images and deletes nothing (prune with sync); nothing was copied",
        );
        return Outcome::InvalidInput;
    }
    follow_bundle(&mut settings, &layout, sidecar.as_ref(), args.rules_given);
    let names = match layout.images() {
        Ok(entries) => entries
            .into_iter()
            .map(|entry| (entry.name, entry.digest))
            .collect::<HashMap<String, Digest>>(),
        Err(e) => {
            log(&format!(
                "error: --from {}: {e}; nothing was copied",
                args.from
            ));
            return Outcome::InvalidInput;
        }
    };
    let mut plan = match sidecar.as_ref().filter(|_| !args.rules_given) {
        Some(sidecar) => recorded_plan(sidecar, &settings),
        None => {
            let mut images: Vec<Reference> = names
                .keys()
                .filter_map(|name| Reference::parse(name).ok())
                .collect();
            images.sort_by_key(ToString::to_string);
            plan::plan_bundle(&settings.rules, &images, settings.copy.referrers)
        }
    };
    let Some(client) = connect(&settings, cancelled) else {
        return Outcome::InvalidInput;
    };
    log_start(&settings);
    log(&format!(
        "importing from {}: {} image(s) planned{}",
        args.from,
        plan.jobs.len(),
        if args.rules_given {
            ""
        } else {
            " as the bundle records them"
        }
    ));
    let base = sidecar.as_ref().and_then(|s| s.base.clone());
    let check = BundleCheck::new(&layout, &names, base, &client);
    check.run(&Threads::new(settings.copy.threads), &mut plan);
    let targets = super::prepare_targets::prepare_targets(
        &client,
        &mut plan,
        settings.create_targets,
        settings.copy.mode == Mode::DryRun,
    );
    let copier = Copier::between(&layout, &client, client.transport(), settings.copy.clone());
    let (results, _) = copy(&settings, &copier, &mut plan, |_, _| {});
    let ran = Ran {
        plan,
        targets,
        results,
        pruned: Vec::new(),
    };
    finish(&settings, &client, ran, started)
}

/// What the bundle decides for the run: referrers it carries are imported (said on the
/// log), and without `--images` the report names its record as the rules file.
fn follow_bundle(
    settings: &mut SyncSettings,
    layout: &Layout,
    sidecar: Option<&Sidecar>,
    rules_given: bool,
) {
    if sidecar.is_some_and(|s| s.referrers) && !settings.copy.referrers {
        log("the bundle carries referrers (exported with --referrers): they are imported too");
        settings.copy.referrers = true;
        settings.shown.referrers = true;
    }
    if !rules_given {
        settings.shown.images_file = (layout.root().join(layout::sidecar::FILE_NAME))
            .display()
            .to_string();
    }
}

/// The layout `--from` names (an archive is read where it is) and its sidecar; `None`
/// after saying why not.
fn open_bundle(args: &ImportArgs) -> Option<(Layout, Option<Sidecar>)> {
    let opened = BundlePath::parse(&args.from).and_then(|bundle| {
        let layout = match bundle {
            BundlePath::Directory(dir) => Layout::open(&dir),
            BundlePath::Archive(file) => Layout::open_archive(&file),
        }
        .map_err(|e| e.message)?;
        let sidecar = layout.sidecar().map_err(|e| e.message)?;
        Ok((layout, sidecar))
    });
    match opened {
        Ok((_, None)) if !args.rules_given => {
            log(&format!(
                "error: --from {}: the layout has no {} (it was not written by export); \
                 give --images FILE with rules keyed by the images' source references; \
                 nothing was copied",
                args.from,
                layout::sidecar::FILE_NAME
            ));
            None
        }
        Ok(bundle) => Some(bundle),
        Err(message) => {
            log(&format!("error: --from {message}; nothing was copied"));
            None
        }
    }
}

/// The jobs the export planned: each image to the target its rule named.
fn recorded_plan(sidecar: &Sidecar, settings: &SyncSettings) -> Plan {
    let mut plan = Plan::default();
    for image in &sidecar.images {
        let (Ok(source), Ok(target)) = (
            Reference::parse(&image.source),
            Reference::parse(&image.target),
        ) else {
            plan.warnings.push(format!(
                "{}: image {:?} → {:?} is not a pair of references, skipped",
                layout::sidecar::FILE_NAME,
                image.source,
                image.target
            ));
            continue;
        };
        if settings
            .shard
            .is_none_or(|shard| shard.contains(&source.name()))
        {
            plan.jobs.push(Job {
                rule: image.rule.clone(),
                rule_line: image.rule_line,
                source,
                target,
                trusted: false,
            });
        }
    }
    plan
}
