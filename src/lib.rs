//! image-migrator: copy container images between registries, exactly and incrementally.
//!
//! The data flows one way: `cli` → `config` → `plan` → `copy` → `report`, with
//! `registry`/`auth`/`http` underneath. Only `app` and `main` choose threads, write files
//! and pick exit codes.

pub mod digest;
pub mod kube;
pub mod reference;
