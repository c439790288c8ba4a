//! image-migrator: copy container images between registries, exactly and incrementally.
//!
//! The data flows one way: `cli` → `config` → `plan` → `copy` → `report`, with
//! `registry`/`auth`/`http` underneath. Only `commands` and `main` choose threads, write files
//! and pick exit codes.

pub mod cli;
pub mod commands;
pub mod config;
pub mod copy;
pub mod credentials;
pub mod digest;
pub mod end;
pub mod error;
pub mod github;
pub mod hints;
pub mod http;
pub mod kind;
pub mod kube;
pub mod layout;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod proxy_url;
pub mod prune;
pub mod reference;
pub mod registry;
pub mod report;
pub mod signing;
pub mod threads;
pub mod vendor;
