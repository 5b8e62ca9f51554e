//! The three overlapping stages every recording goes through, sealing or
//! opening: a reader thread, the AEAD on the calling thread, and a writer
//! thread, with memory bounded by a few chunks.

use super::RecordingError;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How many chunks may wait between two stages of the pipeline: enough to
/// keep reading, sealing and writing busy at once, little enough that
/// memory stays constant (a few hundred KiB whatever the recording's size).
const DEPTH: usize = 4;

/// A chunk on its way through the pipeline.
struct Chunk {
    buf: Zeroizing<Vec<u8>>,
    len: usize,
    last: bool,
}

/// Runs a recording through three overlapping stages: a reader thread that
/// reads `chunk` bytes at a time (one chunk ahead, to know which is last),
/// `transform` on the calling thread (seal or open in place: it returns the
/// bytes to write and the plaintext bytes done), and a writer thread. So
/// reading, AES-GCM and writing overlap instead of taking turns, while
/// memory stays bounded by [`DEPTH`]. Chunks are written in order; the
/// first error stops every stage. Returns the plaintext bytes.
pub(super) fn pipeline(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    chunk: usize,
    spare: usize,
    mut progress: impl FnMut(u64),
    mut transform: impl FnMut(u32, &mut [u8], usize, bool) -> Result<(usize, usize), RecordingError>,
) -> Result<u64, RecordingError> {
    use std::sync::mpsc::{channel, sync_channel};
    let (read_tx, read_rx) = sync_channel::<std::io::Result<Chunk>>(DEPTH);
    let (write_tx, write_rx) = sync_channel::<Chunk>(DEPTH);
    let (free_tx, free_rx) = channel::<Zeroizing<Vec<u8>>>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let buffer = || {
                free_rx
                    .try_recv()
                    .unwrap_or_else(|_| Zeroizing::new(vec![0u8; chunk + spare]))
            };
            let mut cur = buffer();
            let mut cur_len = match fill(input, &mut cur[..chunk]) {
                Ok(n) => n,
                Err(e) => {
                    let _ = read_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let mut next = buffer();
                let next_len = if cur_len == chunk {
                    match fill(input, &mut next[..chunk]) {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = read_tx.send(Err(e));
                            return;
                        }
                    }
                } else {
                    0
                };
                let last = next_len == 0;
                let sent = read_tx.send(Ok(Chunk {
                    buf: cur,
                    len: cur_len,
                    last,
                }));
                if sent.is_err() || last {
                    return;
                }
                cur = next;
                cur_len = next_len;
            }
        });
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for c in write_rx {
                output.write_all(&c.buf[..c.len])?;
                let _ = free_tx.send(c.buf);
            }
            output.flush()
        });

        let mut result = Ok(0u64);
        let (mut counter, mut total) = (0u32, 0u64);
        for read in read_rx.iter() {
            let mut c = match read {
                Ok(c) => c,
                Err(e) => {
                    result = Err(RecordingError::Io(e));
                    break;
                }
            };
            match transform(counter, &mut c.buf, c.len, c.last) {
                Ok((out_len, plain)) => {
                    total += plain as u64;
                    let last = c.last;
                    c.len = out_len;
                    if write_tx.send(c).is_err() {
                        break; // the writer failed; its error is reported below
                    }
                    progress(total);
                    result = Ok(total);
                    if last {
                        break;
                    }
                    counter = match counter.checked_add(1) {
                        Some(n) => n,
                        None => {
                            result = Err(RecordingError::Header(
                                "recording too large for the chunk counter".into(),
                            ));
                            break;
                        }
                    };
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(write_tx); // lets the writer finish what it has
        drop(read_rx); // stops the reader if it is still going
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        let _ = reader.join();
        match (result, written) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(RecordingError::Io(e)),
            (Ok(n), Ok(())) => Ok(n),
        }
    })
}
