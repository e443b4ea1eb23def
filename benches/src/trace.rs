//! Readers of the recorded access traces in `shared/traces/`.
//!
//! Both readers return `Ok(None)` when their file is absent, so callers can
//! print a skip message instead of failing; a file that is present but
//! unreadable or malformed is an error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Environment variable that, when set, names the traces directory in place
/// of the default `<workspace>/../shared/traces`.
pub const TRACES_ENV: &str = "STRATA_TRACES";

/// Directory holding the trace files: `$STRATA_TRACES` if set, else
/// `shared/traces` next to the workspace root.
#[must_use]
pub fn traces_dir() -> PathBuf {
    match std::env::var_os(TRACES_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"),
    }
}

/// Reads the ARC paper's OLTP trace (`arc-OLTP.lis.zst`).
///
/// Each line is `start_block block_count ignored request_no`; it stands for
/// the `block_count` consecutive keys `start_block..start_block +
/// block_count`, which are emitted in order.
///
/// # Errors
///
/// Fails if the file cannot be read or decompressed, or a line is malformed.
pub fn arc_oltp() -> io::Result<Option<Vec<u64>>> {
    let Some(compressed) = read_if_present(&traces_dir().join("arc-OLTP.lis.zst"))? else {
        return Ok(None);
    };
    let text = zstd_decode(&compressed)?;
    let mut keys = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(malformed("arc-OLTP", no, line));
        };
        let (Ok(start), Ok(count)) = (start.parse::<u64>(), count.parse::<u64>()) else {
            return Err(malformed("arc-OLTP", no, line));
        };
        let end = start
            .checked_add(count)
            .ok_or_else(|| malformed("arc-OLTP", no, line))?;
        keys.extend(start..end);
    }
    Ok(Some(keys))
}

/// Reads the LIRS authors' glimpse trace (`lirs-gli.trace.gz`): one integer
/// key per line.
///
/// # Errors
///
/// Fails if the file cannot be read or decompressed, or a line is not an
/// integer.
pub fn lirs_glimpse() -> io::Result<Option<Vec<u64>>> {
    let path = traces_dir().join("lirs-gli.trace.gz");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)));
    let mut keys = Vec::new();
    for (no, line) in reader.lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        keys.push(
            line.parse::<u64>()
                .map_err(|_| malformed("lirs-gli", no, line))?,
        );
    }
    Ok(Some(keys))
}

fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decompresses every zstd frame in `input` and returns the text.
fn zstd_decode(mut input: &[u8]) -> io::Result<String> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        frame.read_to_end(&mut out)?;
    }
    String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn malformed(trace: &str, line_no: usize, line: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{trace}: malformed line {}: {line:?}", line_no + 1),
    )
}
