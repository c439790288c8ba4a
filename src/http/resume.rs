//! A blob download that continues where it broke. When the body of a blob `GET` fails
//! (reset, cut short, under the speed floor) before its last byte, [`ResumingReader`] asks
//! for the rest (`Range: bytes=N-(size-1)`, the byte reached to the last) and goes on
//! reading, so its consumer — the verifying reader and the upload it feeds — sees one
//! unbroken stream and the digest is computed over the whole blob across the break. A
//! server that answers the range with the whole body (200, or a redirect target that
//! refuses ranges) is read again from the start, its first N bytes dropped. Each
//! continuation spends a try of the transfer's [`RetryBudget`]: a resume is an attempt.

use std::io::{self, Read};

use super::RetryBudget;
use crate::error::{Error, Result};

/// A blob's body from some byte on.
pub struct BlobBody<'a> {
    pub reader: Box<dyn Read + 'a>,
    /// The first byte it holds: the byte asked for, or 0 when the server sent it whole.
    pub starts_at: u64,
}

/// Asks for a blob's body from a byte on.
pub type Reopen<'a> = dyn FnMut(u64) -> Result<BlobBody<'a>> + 'a;

/// A blob body of `size` bytes that resumes after a break (see the module's doc).
pub struct ResumingReader<'a> {
    body: Box<dyn Read + 'a>,
    /// Bytes delivered so far.
    reached: u64,
    size: u64,
    budget: &'a RetryBudget<'a>,
    reopen: Box<Reopen<'a>>,
    /// The blob and where it comes from, for errors.
    what: String,
}

impl<'a> ResumingReader<'a> {
    /// The blob from byte `at` on, `first` the body asked for from there.
    pub fn new(
        first: BlobBody<'a>,
        at: u64,
        size: u64,
        budget: &'a RetryBudget<'a>,
        reopen: Box<Reopen<'a>>,
        what: String,
    ) -> Result<Self> {
        let mut reader = ResumingReader {
            body: Box::new(std::io::empty()),
            reached: at,
            size,
            budget,
            reopen,
            what,
        };
        reader.body = reader.skip_to_reached(first)?;
        Ok(reader)
    }

    /// After `broken`: a new body from the byte reached, as long as the budget lasts.
    fn resume(&mut self, broken: io::Error) -> io::Result<()> {
        let mut error = Error::network(format!(
            "{}: broken at byte {} of {}: {broken}",
            self.what, self.reached, self.size
        ));
        loop {
            if !self.budget.spend(&error) {
                return Err(io::Error::new(broken.kind(), error.message));
            }
            match (self.reopen)(self.reached).and_then(|body| self.skip_to_reached(body)) {
                Ok(reader) => {
                    self.body = reader;
                    return Ok(());
                }
                Err(e) => error = e,
            }
        }
    }

    /// A new body positioned at the byte reached: as it is when the range was honoured,
    /// else with the bytes before dropped.
    fn skip_to_reached(&self, body: BlobBody<'a>) -> Result<Box<dyn Read + 'a>> {
        let BlobBody {
            mut reader,
            starts_at,
        } = body;
        if starts_at == self.reached {
            return Ok(reader);
        }
        if starts_at != 0 {
            return Err(Error::protocol(format!(
                "{}: asked for the bytes from {}, got them from {starts_at}",
                self.what, self.reached
            )));
        }
        let dropped = io::copy(&mut (&mut reader).take(self.reached), &mut io::sink())
            .map_err(|e| Error::network(format!("{}: reading it again: {e}", self.what)))?;
        if dropped < self.reached {
            return Err(Error::network(format!(
                "{}: read again, it ended at byte {dropped}",
                self.what
            )));
        }
        Ok(reader)
    }
}

impl Read for ResumingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let broken = match self.body.read(buf) {
                Ok(0) if self.reached < self.size && !buf.is_empty() => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the body ended at byte {} of {}", self.reached, self.size),
                ),
                Ok(n) => {
                    self.reached += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Past the announced size a failure is not a break: the consumer decides.
                Err(e) if self.reached >= self.size => return Err(e),
                Err(e) => e,
            };
            self.resume(broken)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::http::{RequestStats, Transport, TransportOptions};

    /// Yields `data` up to byte `cut`, then fails as a reset connection would.
    struct BreaksAt<'d> {
        data: &'d [u8],
        cut: usize,
        at: usize,
    }

    impl Read for BreaksAt<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return Ok(0);
            }
            if self.at >= self.cut {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            let n = buf.len().min(self.cut - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Reads `data`, broken at each of `cuts` (absolute offsets, in order), reopened with
    /// ranges honoured or not; the bytes read, the offsets asked for, the tries spent.
    fn read_through(
        data: &[u8],
        cuts: &[usize],
        honour_ranges: bool,
        retries: u32,
    ) -> (io::Result<Vec<u8>>, Vec<u64>, u32) {
        let options = TransportOptions {
            retries,
            ..TransportOptions::default()
        };
        let transport = Transport::new(&options, Arc::new(AtomicBool::new(false))).unwrap();
        let stats = RequestStats::default();
        let mut asked = Vec::new();
        let mut read = None;
        let _ = transport.retrying_within(&stats, |budget| {
            let mut cuts = cuts.iter().copied();
            let first = cuts.next().unwrap_or(data.len());
            let asked = &mut asked;
            let reopen = move |offset: u64| {
                asked.push(offset);
                let starts_at = if honour_ranges { offset } else { 0 };
                let cut = cuts.next().unwrap_or(data.len());
                Ok(BlobBody {
                    reader: Box::new(BreaksAt {
                        data,
                        cut,
                        at: starts_at as usize,
                    }),
                    starts_at,
                })
            };
            let body = BlobBody {
                reader: Box::new(BreaksAt {
                    data,
                    cut: first,
                    at: 0,
                }),
                starts_at: 0,
            };
            let size = data.len() as u64;
            let reopen = Box::new(reopen);
            let mut reader =
                ResumingReader::new(body, 0, size, budget, reopen, "b".into()).unwrap();
            let mut out = Vec::new();
            read = Some(reader.read_to_end(&mut out).map(|_| out));
            Ok(())
        });
        let tries = stats.retries.load(Ordering::Relaxed);
        (read.unwrap(), asked, tries)
    }

    #[test]
    fn a_broken_body_continues_from_the_byte_reached() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (out, asked, tries) = read_through(&data, &[9_000, 9_500], true, 3);
        assert_eq!(out.unwrap(), data);
        assert_eq!(asked, vec![9_000, 9_500]);
        assert_eq!(tries, 2, "each resume is a try");
    }

    #[test]
    fn a_server_that_sends_the_whole_body_again_is_read_past_the_bytes_reached() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 13) as u8).collect();
        let (out, asked, _) = read_through(&data, &[4_000], false, 1);
        assert_eq!(out.unwrap(), data);
        assert_eq!(asked, vec![4_000]);
    }

    #[test]
    fn resumes_stop_when_the_budget_is_spent() {
        let data = vec![1u8; 1000];
        let (out, asked, tries) = read_through(&data, &[100, 200, 300], true, 1);
        let error = out.unwrap_err();
        assert!(error.to_string().contains("broken at byte 200"), "{error}");
        assert_eq!((asked, tries), (vec![100], 1));
    }
}
