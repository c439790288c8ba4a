//! One blob streamed from the source into the target, verified on the way (size and
//! sha256 over the whole blob), inside the one retry loop. Both sides continue after a
//! break instead of starting again: a source body that breaks is asked for from the byte
//! reached (`http::ResumingReader`), and a chunked upload that breaks asks the target how
//! much it holds and goes on from there. The bytes for that come from the source again,
//! read from the target's offset with a `Range` request (no copy of the blob is kept: a
//! chunk may be 64 MiB and several blobs stream at once); the verification keeps its
//! state, so the bytes sent twice are hashed once and the digest is still checked over
//! the whole. A target that cannot say where its upload stands starts the blob again.
//! Every continuation is a try of the same retry budget.

use std::io::{self, Read};
use std::sync::atomic::Ordering;

use super::{Copier, Ctx};
use crate::digest::{Digest, VerifyingReader};
use crate::end::{UploadAt, UploadError};
use crate::error::{Error, Result};
use crate::http::{BlobBody, ResumingReader, RetryBudget};

/// An upload that broke part-way: its session, and the verification of what was sent.
struct Broken {
    at: UploadAt,
    verified: VerifyingReader<io::Empty>,
}

/// Where an attempt starts: an open session (and the bytes it holds), and the
/// verification of the bytes before them.
type Start = (Option<UploadAt>, Option<VerifyingReader<io::Empty>>);

impl Copier<'_> {
    /// The blob into the target, into `upload` when a mount opened one; retried on
    /// transient failures, continued where it broke (see the module's doc).
    pub(super) fn stream_blob(
        &self,
        ctx: &Ctx,
        digest: &Digest,
        size: u64,
        upload: Option<String>,
    ) -> Result<()> {
        let mut upload = upload.map(UploadAt::new);
        let mut broken: Option<Broken> = None;
        self.transport.retrying_within(ctx.stats(), |budget| {
            let start = match broken.take() {
                Some(interrupted) => self.where_to_continue(ctx, interrupted, &mut broken)?,
                None => (upload.take(), None),
            };
            match self.send_blob(ctx, (digest, size), budget, start, &mut broken) {
                // The registry refused the whole body at once: again, in chunks.
                Err(UploadError::MonolithicRefused(_)) => {
                    self.send_blob(ctx, (digest, size), budget, (None, None), &mut broken)?
                }
                other => other?,
            }
            ctx.tally.bytes.fetch_add(size, Ordering::Relaxed);
            ctx.tally.transferred.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Where to go on after `interrupted`: its session at the offset the target reports,
    /// or (the target cannot say, or says more than was sent) a new upload. A failure to
    /// ask leaves `interrupted` in `broken` for the next try.
    fn where_to_continue(
        &self,
        ctx: &Ctx,
        interrupted: Broken,
        broken: &mut Option<Broken>,
    ) -> Result<Start> {
        match ctx.target.upload_offset(&interrupted.at, ctx.stats()) {
            Ok(Some(at)) if at.offset <= interrupted.verified.count() => {
                Ok((Some(at), Some(interrupted.verified)))
            }
            Ok(_) => Ok((None, None)),
            Err(e) => {
                *broken = Some(interrupted);
                Err(e)
            }
        }
    }

    /// One attempt: the source from the start's offset on, through the throttle and the
    /// verification, into the target. An interrupted upload is left in `broken`.
    fn send_blob(
        &self,
        ctx: &Ctx,
        (digest, size): (&Digest, u64),
        budget: &RetryBudget<'_>,
        (at, verified): Start,
        broken: &mut Option<Broken>,
    ) -> std::result::Result<(), UploadError> {
        let (source, stats) = (ctx.source, ctx.stats());
        let what = format!("blob {digest} from {}/{}", source.registry(), source.name());
        let offset = at.as_ref().map_or(0, |at| at.offset);
        let reopen = move |from| source.get_blob_from(digest, from, size, stats);
        let first = match offset {
            0 => BlobBody {
                reader: source.get_blob(digest, stats)?,
                starts_at: 0,
            },
            _ => source.get_blob_from(digest, offset, size, stats)?,
        };
        let body =
            ResumingReader::new(first, offset, size, budget, Box::new(reopen), what.clone())?;
        let body: Box<dyn Read> = match self.transport.throttle() {
            Some(throttle) => Box::new(throttle.reader(body)),
            None => Box::new(body),
        };
        let mut reader = match verified {
            Some(verified) => verified.attach(body, offset),
            None => VerifyingReader::new(body, digest.clone(), size),
        };
        let result = ctx.target.put_blob(digest, size, &mut reader, at, stats);
        if let Some(problem) = reader.failure() {
            // Corruption on the way: retry (it may be the network), else fail.
            return Err(UploadError::Failed(Error {
                retryable: true,
                ..Error::digest(format!("{what}: {problem}"))
            }));
        }
        if let Err(UploadError::Interrupted { at, .. }) = &result {
            *broken = Some(Broken {
                at: at.clone(),
                verified: reader.detach(),
            });
        }
        result
    }
}
