//! Shared integration-test support: `mod support;` in a test file.
//!
//! - [`registry`]: start throwaway registries in Docker (anonymous or htpasswd).
//! - [`apiserver`]: a small HTTPS server answering like the Kubernetes API server.
//! - [`seed`]: push real images/indexes over the plain HTTP API and read them back.
//! - [`sync`]: run the binary on auth.json/images.json, check its report, read registry logs.
#![allow(dead_code)]

pub mod apiserver;
pub mod registry;
pub mod seed;
pub mod sync;
