//! Shared integration-test support: `mod support;` in a test file.
//!
//! - [`registry`]: start throwaway registries in Docker (anonymous, htpasswd, TLS, token).
//! - [`apiserver`]: a small HTTPS server answering like the Kubernetes API server.
//! - [`seed`]: push real images/indexes over the plain HTTP API and read them back.
//! - [`sync`]: run the binary on auth.json/images.json, check its report, read registry logs.
//! - [`fault_proxy`]: a fault-injecting HTTP proxy in front of a registry.
//! - [`token_server`]: a bearer token server issuing signed JWTs a registry accepts.
//! - [`blob_server`]: the "object storage" that redirected blob downloads land on.
//! - [`migrator`]: run the binary in a scratch directory and read its report.
#![allow(dead_code)]

pub mod apiserver;
pub mod blob_server;
pub mod fault_proxy;
pub mod migrator;
pub mod registry;
pub mod seed;
pub mod sync;
pub mod token_server;
