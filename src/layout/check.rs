//! What an image's tree holds in a layout: `import` checks it whole before anything of
//! the image is pushed (every manifest present, every blob present and hashing to its
//! name — or, in a delta bundle, left out because the base carried it), and `export`
//! records the blobs each image uses, which a later delta leaves out.

use super::Layout;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, Content};

impl Layout {
    /// Whether the bundle holds everything the manifest `digest` needs. A blob that is
    /// absent but `left_out` says the base carried is not an error: those are returned,
    /// for the caller to find in the target. The error names the first digest missing or
    /// corrupt.
    pub fn check_complete(
        &self,
        digest: &Digest,
        left_out: &dyn Fn(&Digest) -> bool,
    ) -> Result<Vec<Digest>> {
        let mut missing = Vec::new();
        self.walk(digest, 0, &mut |blob, size| {
            if !self.blobs.exists(blob) && left_out(blob) {
                missing.push(blob.clone());
                return Ok(());
            }
            self.blobs.verify(blob, size)
        })?;
        Ok(missing)
    }

    /// The blobs (configs and layers, not manifests) of the tree of `digest`.
    pub fn tree_blobs(&self, digest: &Digest) -> Result<Vec<Digest>> {
        let mut blobs = Vec::new();
        self.walk(digest, 0, &mut |blob, _| {
            blobs.push(blob.clone());
            Ok(())
        })?;
        blobs.sort();
        blobs.dedup();
        Ok(blobs)
    }

    /// Every blob of the tree of `digest`, handed to `on_blob` with its size.
    fn walk(
        &self,
        digest: &Digest,
        depth: usize,
        on_blob: &mut dyn FnMut(&Digest, u64) -> Result<()>,
    ) -> Result<()> {
        if depth > manifest::MAX_INDEX_DEPTH {
            return Err(Error::protocol(format!(
                "{digest}: indexes nested too deep"
            )));
        }
        let manifest = self.manifest(digest, None).map_err(|e| lacks(digest, e))?;
        match manifest::content(&manifest)? {
            Content::Index { children } => {
                for (child, _) in children {
                    self.walk(&child, depth + 1, on_blob)?;
                }
            }
            Content::Image { blobs } => {
                for (blob, size) in blobs {
                    on_blob(&blob, size)?;
                }
            }
        }
        Ok(())
    }
}

/// A manifest missing from the bundle, said as such.
fn lacks(digest: &Digest, error: Error) -> Error {
    if error.kind == ErrorKind::NotFound {
        Error::new(
            ErrorKind::NotFound,
            format!("the bundle lacks manifest {digest}"),
        )
    } else {
        error
    }
}
