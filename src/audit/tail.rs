//! The end of an existing trail: whether a file is a trail at all, and
//! its last complete record, read backwards without reading the whole
//! file (start-up costs the same with a large trail).

use std::io::{Read, Seek, SeekFrom};

/// How every record line starts (serde writes `Line`'s fields in order).
pub(super) const RECORD_START: &[u8] = b"{\"seq\":";

/// Whether a file of `size` bytes may be an audit trail: empty, or
/// starting with a record. The torn-tail repair truncates, so it runs only
/// on a file that proves to be a trail — never on a store or a root key
/// that a wrong `audit_log` names.
pub(super) fn looks_like_a_trail(f: &mut std::fs::File, size: u64) -> std::io::Result<bool> {
    if size == 0 {
        return Ok(true);
    }
    let mut start = [0u8; RECORD_START.len()];
    let n = (size as usize).min(start.len());
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut start[..n])?;
    Ok(start[..n] == RECORD_START[..n])
}

/// What the end of an existing file says.
pub(super) struct Tail {
    /// Bytes up to and including the last newline.
    pub(super) complete_len: u64,
    /// The last complete line.
    pub(super) last_line: Option<Vec<u8>>,
}

/// Reads the last complete line of `f` without reading the whole file:
/// start-up costs the same with a large trail.
pub(super) fn read_tail(f: &mut std::fs::File, size: u64) -> std::io::Result<Tail> {
    let mut end = size;
    let mut buf = Vec::new();
    let mut last_newline: Option<u64> = None;
    // Walk back in chunks until two newlines (or the start) bound a line.
    loop {
        let start = end.saturating_sub(64 * 1024);
        let mut chunk = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        let base = start;
        let newlines: Vec<u64> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| base + i as u64)
            .collect();
        if last_newline.is_none() {
            last_newline = newlines.last().copied();
        }
        match last_newline {
            None if start == 0 => {
                return Ok(Tail {
                    complete_len: 0,
                    last_line: None,
                })
            }
            None => {}
            Some(nl) => {
                let before = newlines.iter().rev().find(|p| **p < nl).copied();
                if before.is_some() || start == 0 {
                    let from = before.map(|p| p + 1).unwrap_or(0);
                    let line = buf[(from - base) as usize..(nl - base) as usize].to_vec();
                    return Ok(Tail {
                        complete_len: nl + 1,
                        last_line: Some(line),
                    });
                }
            }
        }
        end = start;
    }
}
