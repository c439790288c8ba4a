//! `image-migrator config` (discovery): write images.json from what a Kubernetes cluster runs.
//! Named apart from `crate::config`, which reads the files this writes.

use super::Outcome;
use crate::kube::KubeError;

/// `image-migrator config`: images.json from a Kubernetes cluster.
pub fn discover(args: &crate::kube::ConfigArgs) -> Outcome {
    match crate::kube::run(args) {
        Ok(()) => Outcome::Success,
        Err(error) => {
            eprintln!("error: {error}");
            outcome_of(&error)
        }
    }
}

/// Bad flags, kubeconfig or input: fix the command line and rerun. Failures talking to the
/// cluster or writing the output are run-time failures.
fn outcome_of(error: &KubeError) -> Outcome {
    match error {
        KubeError::Usage(_) | KubeError::Kubeconfig { .. } | KubeError::Input { .. } => {
            Outcome::InvalidInput
        }
        KubeError::Cluster { .. } | KubeError::Output { .. } => Outcome::Failed,
    }
}
