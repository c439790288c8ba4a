//! Turns Kubernetes objects into images.json rules: finds the pod template of each workload
//! kind, collects container images from it, normalizes them the way Docker does and maps
//! each to the target namespace. Pure functions over JSON, so the same code serves the API
//! server and `--from-file`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::reference::{Location, Reference};

/// The workload kinds read from a cluster, in the order they are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::Job,
        Kind::CronJob,
        Kind::Pod,
    ];

    /// `apps/v1`, `batch/v1` or `v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Pod => "v1",
        }
    }

    /// The resource name in URLs (`deployments`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::ReplicaSet => "replicasets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::Pod => "pods",
        }
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Pod => "Pod",
        }
    }

    /// The path of the list endpoint, cluster-wide or in one namespace.
    pub fn list_path(self, namespace: Option<&str>) -> String {
        let prefix = match self.api_version() {
            "v1" => "/api/v1".to_string(),
            group => format!("/apis/{group}"),
        };
        match namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}", self.plural()),
            None => format!("{prefix}/{}", self.plural()),
        }
    }

    /// The pod spec inside an object of this kind.
    fn pod_spec(self, object: &Value) -> Option<&Value> {
        let spec = object.get("spec")?;
        match self {
            Kind::Pod => Some(spec),
            Kind::CronJob => spec.pointer("/jobTemplate/spec/template/spec"),
            _ => spec.pointer("/template/spec"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an image was seen, for messages: `Deployment apps/web`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Images found so far, each with the first place it was seen.
#[derive(Debug, Default)]
pub struct ImageSet {
    images: BTreeMap<String, Origin>,
}

impl ImageSet {
    /// Adds the images of one object of `kind`. A ReplicaSet that has an owner (a
    /// Deployment's) is skipped: its owner is read anyway.
    pub fn add_object(&mut self, kind: Kind, object: &Value) {
        if kind == Kind::ReplicaSet
            && object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| !refs.is_empty())
        {
            return;
        }
        let Some(spec) = kind.pod_spec(object) else {
            return;
        };
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let origin = Origin {
            kind,
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
        };
        for field in ["initContainers", "containers", "ephemeralContainers"] {
            let containers = spec.get(field).and_then(Value::as_array);
            for container in containers.into_iter().flatten() {
                if let Some(image) = container.get("image").and_then(Value::as_str) {
                    let image = image.trim();
                    if !image.is_empty() {
                        self.images
                            .entry(image.to_string())
                            .or_insert_with(|| origin.clone());
                    }
                }
            }
        }
    }

    /// Adds what `kubectl get ... -o json` printed: a `List` (or `XxxList`) of objects, or
    /// one object. Items of kinds this tool does not read are ignored.
    pub fn add_document(&mut self, document: &Value) {
        let list_kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
        match document.get("items").and_then(Value::as_array) {
            Some(items) => {
                let default = list_kind.strip_suffix("List").and_then(Kind::from_name);
                for item in items {
                    match item.get("kind").and_then(Value::as_str) {
                        Some(kind) => match Kind::from_name(kind) {
                            Some(kind) => self.add_object(kind, item),
                            None if kind.ends_with("List") => self.add_document(item),
                            None => {}
                        },
                        None => {
                            if let Some(kind) = default {
                                self.add_object(kind, item)
                            }
                        }
                    }
                }
            }
            None => {
                if let Some(kind) = Kind::from_name(list_kind) {
                    self.add_object(kind, document)
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Image strings as written in the specs, with where each was first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.images.iter().map(|(i, o)| (i.as_str(), o))
    }
}

/// Where rules point: `registry/namespace` (namespace may have several segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub registry: String,
    pub namespace: String,
}

impl Target {
    /// Parses `registry/namespace`: the first segment must be a registry host, at least one
    /// namespace segment must follow, and no tag or digest.
    pub fn parse(value: &str) -> Result<Target, String> {
        let value = value.trim();
        let hint = "expected registry/namespace, e.g. harbor.example.com/mirror \
                    or docker.io/myuser";
        if value.contains('@') || value.ends_with('/') || value.contains("//") {
            return Err(format!("invalid target {value:?}: {hint}"));
        }
        match value.split_once('/') {
            Some((first, _)) if crate::reference::looks_like_registry(first) => {}
            _ => return Err(format!("invalid target {value:?}: {hint}")),
        }
        if value
            .split_once('/')
            .is_some_and(|(_, path)| path.contains(':'))
        {
            return Err(format!(
                "invalid target {value:?}: must not contain a tag; {hint}"
            ));
        }
        let location = Location::parse(value)
            .map_err(|e| format!("invalid target {value:?}: {}; {hint}", e.reason))?;
        let Some(namespace) = location.namespace else {
            return Err(format!("invalid target {value:?}: {hint}"));
        };
        Ok(Target {
            registry: location.registry,
            namespace,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.namespace)
    }
}

/// The result of mapping images to a target.
#[derive(Debug, Default)]
pub struct Rules {
    /// source → target, sorted by source.
    pub rules: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

impl Rules {
    /// images.json text: a pretty-printed JSON object ending with a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.rules).expect("a map of strings");
        text.push('\n');
        text
    }
}

/// One rule for an image: `(source, target)`. No tag means `latest`; a digest pins the
/// source (its tag is dropped) and the target gets no tag (pushed by digest).
pub fn rule_for(image: &str, target: &Target) -> Result<(String, String), String> {
    // Repositories without a namespace (registry.k8s.io/pause, etcd, kube-proxy) are rules
    // like any other: images.json reads them as image-syncer does.
    let reference = Reference::parse_normalized(image).map_err(|e| e.reason)?;
    let last = reference
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(&reference.repository);
    let target_repo = format!("{target}/{last}");
    Ok(match &reference.digest {
        Some(digest) => (format!("{}@{digest}", reference.name()), target_repo),
        None => {
            let tag = reference.tag.as_deref().unwrap_or("latest");
            (
                format!("{}:{tag}", reference.name()),
                format!("{target_repo}:{tag}"),
            )
        }
    })
}

/// Builds the rules for every image. Unparseable images are skipped with a warning; two
/// different source repositories that land on the same target are kept and warned about.
pub fn build_rules(images: &ImageSet, target: &Target) -> Rules {
    let mut out = Rules::default();
    for (image, origin) in images.iter() {
        match rule_for(image, target) {
            Ok((source, dest)) => {
                out.rules.insert(source, dest);
            }
            Err(reason) => out
                .warnings
                .push(format!("skipping image {image:?} of {origin}: {reason}")),
        }
    }
    let mut by_target: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (source, dest) in &out.rules {
        by_target.entry(dest).or_default().insert(source);
    }
    for (dest, sources) in by_target {
        let names: BTreeSet<&str> = sources.iter().map(|s| source_name(s)).collect();
        if names.len() > 1 {
            let list: Vec<&str> = sources.into_iter().collect();
            out.warnings.push(format!(
                "{} map to the same target {dest}; all are kept, edit the targets to tell them apart",
                list.join(" and ")
            ));
        }
    }
    out
}

/// `registry/repository` of a rule source (without `:tag` or `@digest`).
fn source_name(source: &str) -> &str {
    let name = source.split('@').next().unwrap_or(source);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> Target {
        Target::parse("harbor.example.com/mirror").unwrap()
    }

    #[test]
    fn docker_hub_names_are_normalized_and_get_latest() {
        assert_eq!(
            rule_for("nginx", &target()).unwrap(),
            (
                "docker.io/library/nginx:latest".into(),
                "harbor.example.com/mirror/nginx:latest".into()
            )
        );
        assert_eq!(
            rule_for("quay.io/coreos/etcd:v3.5.0", &target()).unwrap(),
            (
                "quay.io/coreos/etcd:v3.5.0".into(),
                "harbor.example.com/mirror/etcd:v3.5.0".into()
            )
        );
        assert_eq!(
            rule_for("registry.k8s.io/pause:3.10", &target()).unwrap(),
            (
                "registry.k8s.io/pause:3.10".into(),
                "harbor.example.com/mirror/pause:3.10".into()
            )
        );
        assert_eq!(
            rule_for("localhost:5000/a/b/c:1", &target()).unwrap().1,
            "harbor.example.com/mirror/c:1"
        );
    }

    #[test]
    fn digest_pins_the_source_and_drops_the_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (source, dest) = rule_for(&format!("redis:7@{d}"), &target()).unwrap();
        assert_eq!(source, format!("docker.io/library/redis@{d}"));
        assert_eq!(dest, "harbor.example.com/mirror/redis");
    }

    #[test]
    fn target_needs_registry_and_namespace() {
        for bad in [
            "harbor.example.com",
            "mirror",
            "mirror/x",
            "harbor.example.com/",
            "harbor.example.com/Mirror",
            "harbor.example.com/m:tag",
            "harbor.example.com/m@sha256:00",
            "https://harbor.example.com/m",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
        let t = Target::parse("registry-1.docker.io/me/team").unwrap();
        assert_eq!(t.to_string(), "docker.io/me/team");
        assert_eq!(
            Target::parse("localhost:5000/ns").unwrap().to_string(),
            "localhost:5000/ns"
        );
    }

    #[test]
    fn pod_templates_of_every_kind() {
        let template =
            |image: &str| json!({"spec": {"containers": [{"name": "c", "image": image}]}});
        let mut set = ImageSet::default();
        set.add_object(
            Kind::Deployment,
            &json!({"spec": {"template": template("a:1")}}),
        );
        set.add_object(
            Kind::CronJob,
            &json!({"spec": {"jobTemplate": {"spec": {"template": template("b:1")}}}}),
        );
        set.add_object(
            Kind::Pod,
            &json!({"spec": {
                "initContainers": [{"image": "init:1"}],
                "containers": [{"image": "c:1"}],
                "ephemeralContainers": [{"image": "debug:1"}]
            }}),
        );
        set.add_object(
            Kind::ReplicaSet,
            &json!({"metadata": {"ownerReferences": [{"kind": "Deployment"}]},
                    "spec": {"template": template("owned:1")}}),
        );
        let images: Vec<&str> = set.iter().map(|(i, _)| i).collect();
        assert_eq!(images, ["a:1", "b:1", "c:1", "debug:1", "init:1"]);
    }

    #[test]
    fn documents_from_kubectl() {
        let mut set = ImageSet::default();
        set.add_document(&json!({"kind": "List", "items": [
            {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}},
            {"kind": "Service", "spec": {"template": {"spec": {"containers": [{"image": "no"}]}}}}
        ]}));
        set.add_document(&json!({"kind": "PodList", "items": [
            {"spec": {"containers": [{"image": "b"}]}}
        ]}));
        set.add_document(&json!({"kind": "Pod", "spec": {"containers": [{"image": "c"}]}}));
        let images: Vec<&str> = set.iter().map(|(i, _)| i).collect();
        assert_eq!(images, ["a", "b", "c"]);
    }

    #[test]
    fn collisions_are_warned_about_and_kept() {
        let mut set = ImageSet::default();
        set.add_document(
            &json!({"kind": "PodList", "items": [{"spec": {"containers": [
                {"image": "nginx:1.25"},
                {"image": "docker.io/library/nginx:1.25"},
                {"image": "quay.io/other/nginx:1.25"},
                {"image": "redis:7"},
                {"image": "redis:8"}
            ]}}]}),
        );
        let rules = build_rules(&set, &target());
        assert_eq!(rules.rules.len(), 4);
        assert_eq!(rules.warnings.len(), 1, "{:?}", rules.warnings);
        assert!(rules.warnings[0].contains("docker.io/library/nginx:1.25"));
        assert!(rules.warnings[0].contains("quay.io/other/nginx:1.25"));
        assert!(rules.to_json().ends_with("}\n"));
    }

    #[test]
    fn list_paths() {
        assert_eq!(Kind::Pod.list_path(None), "/api/v1/pods");
        assert_eq!(
            Kind::CronJob.list_path(Some("ns")),
            "/apis/batch/v1/namespaces/ns/cronjobs"
        );
    }
}
