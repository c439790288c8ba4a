//! A run's results, written out as each image ends rather than held to the end: one JSON
//! line per result in an unnamed temporary file (gone when the process ends, however it
//! ends), a 16-byte place per result kept in plan order, and the summary counted as they
//! arrive. The report, the JUnit file and GitHub's summary read them back one at a time,
//! so memory does not grow with the tags.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::Mutex;

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::report::{ImageResult, ResultSource, Summary};

/// Where one result lies in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::commands) struct Place {
    offset: u64,
    len: u32,
}

impl Place {
    /// A result that could not be written (the spool's error says why).
    const LOST: Place = Place {
        offset: u64::MAX,
        len: 0,
    };
}

/// The spool while the run writes to it (from many threads).
pub(in crate::commands) struct Spool {
    writing: Mutex<Writing>,
}

struct Writing {
    /// `None` when the file could not be made.
    out: Option<BufWriter<File>>,
    end: u64,
    summary: Summary,
    error: Option<String>,
    lost: usize,
}

impl Spool {
    /// A spool in an unnamed file in the temporary directory (`TMPDIR`). When none can be
    /// made, results are still counted and the error is kept for the run to report.
    pub fn create() -> Spool {
        match tempfile::tempfile() {
            Ok(file) => Spool::over(file),
            Err(e) => Spool::with(
                None,
                Some(format!("{}: {e}", std::env::temp_dir().display())),
            ),
        }
    }

    /// A spool writing to `file` (empty, open for reading and writing).
    pub fn over(file: File) -> Spool {
        Spool::with(Some(BufWriter::with_capacity(64 * 1024, file)), None)
    }

    fn with(out: Option<BufWriter<File>>, error: Option<String>) -> Spool {
        Spool {
            writing: Mutex::new(Writing {
                out,
                end: 0,
                summary: Summary::default(),
                error,
                lost: 0,
            }),
        }
    }

    /// Counts `result` and writes it out; where it lies.
    pub fn push(&self, result: &ImageResult) -> Place {
        let mut line = serde_json::to_vec(result).expect("a result serialises");
        line.push(b'\n');
        let mut writing = self.writing.lock().unwrap();
        writing.summary.count(result);
        let written = match (&mut writing.out, line.len()) {
            (Some(out), len) if len <= u32::MAX as usize => out.write_all(&line),
            (Some(_), _) => Err(std::io::Error::other("a result over 4 GiB")),
            (None, _) => Err(std::io::Error::other("no spool")),
        };
        match written {
            Ok(()) => {
                let place = Place {
                    offset: writing.end,
                    len: line.len() as u32,
                };
                writing.end += line.len() as u64;
                place
            }
            Err(e) => {
                writing.lost += 1;
                writing.error.get_or_insert_with(|| e.to_string());
                Place::LOST
            }
        }
    }

    /// The results in the order of `places` (plan order), ready to be read back.
    pub fn finish(self, places: Vec<Place>, planning_failures: usize) -> Spooled {
        let Writing {
            out,
            summary,
            mut error,
            lost,
            ..
        } = self.writing.into_inner().unwrap();
        let file = out.and_then(|out| match out.into_inner() {
            Ok(file) => Some(file),
            Err(e) => {
                error.get_or_insert_with(|| e.error().to_string());
                None
            }
        });
        Spooled {
            reading: Mutex::new(Reading {
                from: file.map(|file| (BufReader::with_capacity(64 * 1024, file), None)),
                error: error.map(|e| unwritten(&e, lost)),
            }),
            places,
            planning_failures,
            summary,
        }
    }
}

fn unwritten(error: &str, lost: usize) -> String {
    match lost {
        0 => error.to_string(),
        n => format!("{error}; {n} result(s) could not be written and are not in the report"),
    }
}

/// A run's results, read back from the spool in plan order.
pub(in crate::commands) struct Spooled {
    reading: Mutex<Reading>,
    places: Vec<Place>,
    /// The first results are of images that failed while planning.
    planning_failures: usize,
    summary: Summary,
}

struct Reading {
    /// The file and where the reader is in it (`None`: not known).
    from: Option<(BufReader<File>, Option<u64>)>,
    error: Option<String>,
}

impl Spooled {
    /// The counts of every result, failed writes included.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Why some results could not be written or read back, if any could not.
    pub fn error(&self) -> Option<String> {
        self.reading.lock().unwrap().error.clone()
    }

    /// The results of the images the copy ran (those that failed while planning left out).
    pub fn copied(&self) -> impl Iterator<Item = Cow<'_, ImageResult>> {
        self.each().skip(self.planning_failures)
    }

    fn read(&self, place: Place) -> Option<ImageResult> {
        if place == Place::LOST {
            return None;
        }
        let mut reading = self.reading.lock().unwrap();
        let (reader, at) = reading.from.as_mut()?;
        match read_at(reader, at, place) {
            Ok(result) => Some(result),
            Err(e) => {
                *at = None;
                reading
                    .error
                    .get_or_insert_with(|| format!("reading back: {e}"));
                None
            }
        }
    }
}

/// The result at `place`; the reader keeps its buffer when the result follows the last.
fn read_at(
    reader: &mut BufReader<File>,
    at: &mut Option<u64>,
    place: Place,
) -> std::io::Result<ImageResult> {
    match *at {
        Some(position) if position == place.offset => {}
        Some(position) => reader.seek_relative(place.offset as i64 - position as i64)?,
        None => {
            use std::io::Seek as _;
            reader.seek(std::io::SeekFrom::Start(place.offset))?;
        }
    }
    *at = None;
    let mut line = vec![0; place.len as usize];
    reader.read_exact(&mut line)?;
    *at = Some(place.offset + u64::from(place.len));
    Ok(serde_json::from_slice(&line)?)
}

impl ResultSource for Spooled {
    fn count(&self) -> usize {
        self.places.len()
    }

    fn each(&self) -> Box<dyn Iterator<Item = Cow<'_, ImageResult>> + '_> {
        Box::new(
            self.places
                .iter()
                .filter_map(|place| self.read(*place))
                .map(Cow::Owned),
        )
    }
}

/// The report's `results` array, read from the spool element by element.
impl Serialize for Spooled {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.places.len()))?;
        for result in self.each() {
            seq.serialize_element(&*result)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn result(n: usize, status: Status) -> ImageResult {
        ImageResult {
            rule_line: 2,
            bytes_transferred: n as u64 * 10,
            blobs_transferred: 1,
            duration_seconds: 0.25,
            ..crate::report::fixtures::result(
                format!("src.io/ns/app:{n}"),
                format!("dst.io/ns/app:{n}"),
                status,
                &format!("gone {n}"),
            )
        }
    }

    fn sources(spooled: &Spooled) -> Vec<String> {
        spooled.each().map(|r| r.source.clone()).collect()
    }

    #[test]
    fn results_written_out_of_order_are_read_back_in_plan_order() {
        let spool = Spool::create();
        // Images end in another order than the plan's: 3, 0, 2, 1.
        let mut places = vec![Place::LOST; 4];
        for n in [3, 0, 2, 1] {
            let status = if n == 2 {
                Status::Failed
            } else {
                Status::Copied
            };
            places[n] = spool.push(&result(n, status));
        }
        let spooled = spool.finish(places, 1);
        let in_order: Vec<String> = (0..4).map(|n| format!("src.io/ns/app:{n}")).collect();
        assert_eq!(sources(&spooled), in_order);
        // A second pass (the JUnit file after the report) reads the same.
        assert_eq!(sources(&spooled), in_order);
        let copied: Vec<String> = spooled.copied().map(|r| r.source.clone()).collect();
        assert_eq!(copied, in_order[1..]);
        let json = serde_json::to_value(&spooled).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 4);
        assert_eq!(json[2]["error"]["message"], "gone 2");
        assert_eq!(json[3]["source"], "src.io/ns/app:3");
        let summary = spooled.summary();
        assert_eq!((summary.total, summary.copied, summary.failed), (4, 3, 1));
        assert_eq!(summary.bytes_transferred, 60);
        assert_eq!(spooled.error(), None);
    }

    #[test]
    fn a_failed_write_is_counted_and_kept_as_the_error_to_report() {
        // /dev/full: every write fails with "no space left on device".
        let full = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/full")
            .unwrap();
        let spool = Spool::over(full);
        // More than the write buffer, so that writes fail while the run goes on.
        let places: Vec<Place> = (0..400)
            .map(|n| spool.push(&result(n, Status::Copied)))
            .collect();
        let spooled = spool.finish(places, 0);
        assert_eq!(spooled.summary().total, 400, "every result counted");
        let error = spooled.error().expect("the failure is kept");
        assert!(error.contains("No space left on device"), "{error}");
        assert!(error.contains("could not be written"), "{error}");
        // Reading what there is neither panics nor invents results.
        assert!(sources(&spooled).len() < 400);
    }
}
