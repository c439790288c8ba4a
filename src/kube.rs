//! Reading what a Kubernetes cluster runs, as a library: the kubeconfig (`kubeconfig`), a
//! read-only API client (`client`), and the container images of the workloads turned into
//! images.json rules (`images`), from the API server or from `kubectl get -o json` output.
//! It returns data and errors and never prints or writes a file: `image-migrator config`
//! (`commands::discover`) does that.

pub mod client;
pub mod images;
pub mod kubeconfig;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use self::client::{Client, ListOutcome};
pub use self::images::{ImageSet, Kind, Rules, Target, build_rules};

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be read or uses something unsupported.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig { path: PathBuf, message: String },
    /// The API server cannot be reached or answered with an error.
    #[error("{message}")]
    Cluster { message: String },
}

/// A cluster whose API server answered: the client, and what to tell people about it.
pub struct Cluster {
    client: Client,
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context used.
    pub context: String,
    /// The Kubernetes version the server reports, when it says one.
    pub version: Option<String>,
}

impl Cluster {
    /// Connects as the kubeconfig says: the file `kubeconfig` (a `:`-separated list is
    /// allowed; `None` or empty means `~/.kube/config`), its `context` or current context.
    /// The server must answer `GET /version`, so TLS and credentials are checked here.
    pub fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self, KubeError> {
        let path = match kubeconfig {
            Some(value) if !value.as_os_str().is_empty() => kubeconfig::choose_path(value),
            _ => kubeconfig::default_path()?,
        };
        let access = kubeconfig::load(&path, context)?;
        let client = Client::new(&access).map_err(|message| KubeError::Kubeconfig {
            path: path.clone(),
            message: format!("context {}: {message}", access.context),
        })?;
        let version = client.version()?;
        Ok(Cluster {
            client,
            server: access.server,
            context: access.context,
            version,
        })
    }

    /// Lists every workload [`Kind`] in each of `namespaces` (all namespaces when empty),
    /// `chunk_size` items a page, adding their images to `images`. A kind the credentials
    /// may not list, or the cluster does not serve, is passed to `skipped` and the rest
    /// is read on.
    pub fn collect_images(
        &self,
        namespaces: &[&str],
        chunk_size: u32,
        images: &mut ImageSet,
        skipped: &mut dyn FnMut(Skipped),
    ) -> Result<(), KubeError> {
        let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().copied().map(Some).collect()
        };
        for scope in scopes {
            for kind in Kind::ALL {
                let reason = match self.client.list(&kind.list_path(scope), chunk_size)? {
                    ListOutcome::Items(items) => {
                        for item in &items {
                            images.add_object(kind, item);
                        }
                        continue;
                    }
                    ListOutcome::Forbidden(message) => SkipReason::Forbidden(message),
                    ListOutcome::NotFound(_) => SkipReason::NotServed,
                };
                skipped(Skipped {
                    kind,
                    namespace: scope.map(str::to_string),
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// A workload kind that was not read in one namespace (or in all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub kind: Kind,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The server said 403, with this message.
    Forbidden(String),
    /// The server said 404: it does not serve this kind (e.g. an old cluster).
    NotServed,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let where_ = match &self.namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "all namespaces".to_string(),
        };
        let plural = self.kind.plural();
        match &self.reason {
            SkipReason::Forbidden(message) => write!(
                f,
                "not allowed to list {plural} in {where_}, skipping them: {message}"
            ),
            SkipReason::NotServed => write!(
                f,
                "the cluster does not serve {plural} ({}) in {where_}, skipping them",
                self.kind.api_version()
            ),
        }
    }
}

/// Adds the objects of `kubectl get ... -o json` output, which may be several JSON
/// documents one after another (one per resource type). The error says what is wrong
/// with the text.
pub fn add_kubectl_output(text: &str, images: &mut ImageSet) -> Result<(), String> {
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut documents = 0;
    for document in stream {
        let document = document
            .map_err(|e| format!("not JSON ({e}); produce it with kubectl get ... -o json"))?;
        images.add_document(&document);
        documents += 1;
    }
    if documents == 0 {
        return Err("is empty; produce it with kubectl get ... -o json".into());
    }
    Ok(())
}

/// Kubernetes namespace names are DNS labels.
pub fn valid_namespace(ns: &str) -> bool {
    ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_kinds_say_what_and_where() {
        let forbidden = Skipped {
            kind: Kind::Pod,
            namespace: Some("web".into()),
            reason: SkipReason::Forbidden("pods is forbidden".into()),
        };
        assert_eq!(
            forbidden.to_string(),
            "not allowed to list pods in namespace web, skipping them: pods is forbidden"
        );
        let not_served = Skipped {
            kind: Kind::CronJob,
            namespace: None,
            reason: SkipReason::NotServed,
        };
        assert_eq!(
            not_served.to_string(),
            "the cluster does not serve cronjobs (batch/v1) in all namespaces, skipping them"
        );
    }

    #[test]
    fn kubectl_output_is_one_or_more_documents() {
        let mut images = ImageSet::default();
        let pod = r#"{"kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}"#;
        add_kubectl_output(&format!("{pod}\n{pod}"), &mut images).unwrap();
        assert_eq!(images.len(), 1);
        let empty = add_kubectl_output(" \n", &mut images).unwrap_err();
        assert!(empty.starts_with("is empty"), "{empty}");
        let broken = add_kubectl_output("{", &mut images).unwrap_err();
        assert!(broken.starts_with("not JSON"), "{broken}");
    }

    #[test]
    fn namespaces_are_dns_labels() {
        assert!(valid_namespace("web-1"));
        for bad in ["Web", "-web", "web-", "we_b", &"a".repeat(64)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }
}
