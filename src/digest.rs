//! Content digests (`sha256:<hex>`) and a reader that hashes and counts bytes while they
//! stream, so a blob is verified without ever being held in memory or on disk.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A validated content digest such as `sha256:e3b0c442…`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {value:?}: {reason}")]
pub struct DigestError {
    pub value: String,
    pub reason: &'static str,
}

impl Digest {
    /// Parses `algorithm:hex`, checking the hex length for the algorithms the distribution
    /// spec registers (sha256: 64, sha512: 128) and a minimum of 32 for others.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let fail = |reason| DigestError {
            value: value.to_string(),
            reason,
        };
        let (algorithm, hex) = value
            .split_once(':')
            .ok_or_else(|| fail("expected algorithm:hex"))?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .split(['+', '.', '_', '-'])
                .all(|part| part.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algorithm_ok {
            return Err(fail("algorithm must be lowercase letters and digits"));
        }
        if !hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(fail("hex part must be lowercase hexadecimal"));
        }
        let expected_len = match algorithm {
            "sha256" => Some(64),
            "sha512" => Some(128),
            _ => None,
        };
        match expected_len {
            Some(len) if hex.len() != len => Err(fail(if len == 64 {
                "sha256 digests have 64 hex characters"
            } else {
                "sha512 digests have 128 hex characters"
            })),
            None if hex.len() < 32 => Err(fail("hex part must have at least 32 characters")),
            _ => Ok(Digest(value.to_string())),
        }
    }

    /// The sha256 digest of some bytes.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("")
    }

    /// Whether `bytes` hash to this digest (only sha256 is computed; other algorithms are
    /// compared through sha256 and therefore never match).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.algorithm() == "sha256" && Digest::sha256_of(bytes) == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Wraps a reader; hashes (sha256) and counts every byte that passes through, and at end of
/// stream fails with `InvalidData` when the size or digest differs from what was expected.
/// The check happens inside `read`, so whoever consumes the stream (an upload body) sees the
/// error before the upload is completed.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    /// Bytes hashed so far.
    count: u64,
    /// Where in the blob the next byte of `inner` lies: behind `count` after
    /// [`VerifyingReader::attach`] to a stream that starts earlier (those bytes pass again
    /// and are not hashed twice).
    position: u64,
    expected_size: u64,
    expected_digest: Digest,
    done: bool,
    failure: Option<String>,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected_digest: Digest, expected_size: u64) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            position: 0,
            expected_size,
            expected_digest,
            done: false,
            failure: None,
        }
    }

    /// Bytes verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The verification so far, without its stream (kept while an upload is resumed).
    pub fn detach(self) -> VerifyingReader<io::Empty> {
        let position = self.position;
        self.attach(io::empty(), position)
    }

    /// The verification so far, continued over `inner`, whose first byte is byte `offset`
    /// of the blob; `offset` may lie behind the bytes verified (they pass again, hashed
    /// once), not beyond them (a gap fails the digest).
    pub fn attach<S: Read>(self, inner: S, offset: u64) -> VerifyingReader<S> {
        VerifyingReader {
            inner,
            hasher: self.hasher,
            count: self.count,
            position: offset.min(self.count),
            expected_size: self.expected_size,
            expected_digest: self.expected_digest,
            done: false,
            failure: self.failure,
        }
    }

    /// Why verification failed, when it did (the reader's consumer may only see a
    /// generic I/O error).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    fn fail(&mut self, message: String) -> io::Error {
        self.failure = Some(message.clone());
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.count != self.expected_size {
            let message = format!(
                "size mismatch for {}: expected {} bytes, received {}",
                self.expected_digest, self.expected_size, self.count
            );
            return Err(self.fail(message));
        }
        let actual = Digest(format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        ));
        if actual != self.expected_digest {
            let message = format!(
                "digest mismatch: expected {}, content hashes to {actual}",
                self.expected_digest
            );
            return Err(self.fail(message));
        }
        self.done = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.position < self.count {
                let message = format!(
                    "size mismatch for {}: the stream ended at byte {}, before the {} verified",
                    self.expected_digest, self.position, self.count
                );
                return Err(self.fail(message));
            }
            self.finish()?;
            return Ok(0);
        }
        // Bytes already verified (a resumed upload sends them again) are not hashed twice.
        let seen = (self.count - self.position).min(n as u64) as usize;
        self.position += n as u64;
        let fresh = &buf[seen..n];
        if fresh.is_empty() {
            return Ok(n);
        }
        self.count += fresh.len() as u64;
        if self.count > self.expected_size {
            let message = format!(
                "size mismatch for {}: more than the expected {} bytes",
                self.expected_digest, self.expected_size
            );
            return Err(self.fail(message));
        }
        self.hasher.update(fresh);
        if self.count == self.expected_size {
            // A consumer that knows the length (an upload with Content-Length) stops
            // here and never reads the end of stream: verify now, and withhold the last
            // bytes on a mismatch so that the upload cannot complete.
            self.finish()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_digests_and_rejects_bad_ones() {
        assert!(Digest::parse(EMPTY).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("multihash+base58:{}", "a".repeat(32))).is_ok());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&EMPTY.to_uppercase()).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "g".repeat(64))).is_err());
        assert!(Digest::parse("nocolon").is_err());
        assert!(Digest::parse(&format!(":{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        assert!(Digest::parse(EMPTY).unwrap().matches(b""));
        assert!(!Digest::parse(EMPTY).unwrap().matches(b"x"));
    }

    #[test]
    fn verifying_reader_accepts_exact_content() {
        let data = b"hello world".to_vec();
        let digest = Digest::sha256_of(&data);
        let mut reader = VerifyingReader::new(&data[..], digest, data.len() as u64);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(reader.count(), 11);
    }

    #[test]
    fn verifying_reader_rejects_flipped_byte_short_and_long_bodies() {
        let data = b"hello world".to_vec();
        let digest = Digest::sha256_of(&data);
        let mut flipped = data.clone();
        flipped[3] ^= 1;
        let mut out = Vec::new();
        let err = VerifyingReader::new(&flipped[..], digest.clone(), 11)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let err = VerifyingReader::new(&data[..5], digest.clone(), 11)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
        let err = VerifyingReader::new(&data[..], digest, 5)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{err}");
    }

    #[test]
    fn a_verification_continues_over_a_stream_that_starts_behind_it() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 7) as u8).collect();
        let digest = Digest::sha256_of(&data);
        let mut reader = VerifyingReader::new(&data[..], digest, 1000);
        let mut first = vec![0u8; 600];
        reader.read_exact(&mut first).unwrap();
        // The registry held 400 bytes: the rest is sent from there, verified once.
        let mut reader = reader.detach().attach(&data[400..], 400);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &data[400..]);
        assert!(reader.failure().is_none());
        assert_eq!(reader.count(), 1000);
    }

    #[test]
    fn verifying_reader_fails_a_consumer_that_reads_exactly_the_expected_size() {
        let data = b"hello world".to_vec();
        let digest = Digest::sha256_of(&data);
        let mut flipped = data.clone();
        flipped[10] ^= 1;
        let mut reader = VerifyingReader::new(&flipped[..], digest.clone(), 11);
        let mut out = Vec::new();
        let err = (&mut reader).take(11).read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(reader.failure().is_some());
        let mut reader = VerifyingReader::new(&data[..], digest, 11);
        out.clear();
        (&mut reader).take(11).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert!(reader.failure().is_none());
    }
}
