//! The recording format: how recorders seal audio with the active public key
//! and players open it (the byte layout is specified for third parties in
//! `docs/recording-format.md`).
//!
//! ```text
//! header = magic "KEKDREC" (7) ‖ version 0x01 (1)
//!        ‖ id_len (1) ‖ key-pair id (ASCII)
//!        ‖ wrapped_len (u16 BE) ‖ RSA-OAEP(SHA-256, MGF1-SHA-256) of the 32-byte content key
//!        ‖ nonce prefix (7) ‖ chunk size (u32 BE, 65536)
//! body   = chunk*      each: AES-256-GCM(content key, nonce, aad = header) of
//!                      `chunk size` plaintext bytes (the last: 0..=chunk size)
//! nonce  = prefix (7) ‖ chunk counter (u32 BE, from 0) ‖ last-chunk flag (0x00 / 0x01)
//! ```
//!
//! The STREAM construction (as in age): the counter orders the chunks, the
//! flag marks the end, and the header is authenticated with every chunk, so
//! truncation, reordering, duplication, a flipped bit anywhere or a wrong key
//! all fail authentication. Sealing and opening stream in constant memory.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// File magic.
pub const MAGIC: &[u8; 7] = b"KEKDREC";
/// Format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// The largest chunk size an opener accepts (1 MiB).
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
const TAG_LEN: usize = 16;

/// What can go wrong. Authentication failures are one opaque variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// Reading or writing failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a kekd recording, or an unsupported version; says which field.
    #[error("not a kekd recording: {0}")]
    Header(String),
    /// The public key cannot be used.
    #[error("the public key is not an RSA public key usable for RSA-OAEP")]
    PublicKey,
    /// The content key could not be unwrapped (wrong key pair, or the daemon
    /// refused).
    #[error("the content key could not be unwrapped: {0}")]
    Unwrap(String),
    /// A chunk failed authentication: truncated, reordered, duplicated,
    /// modified, or sealed under another key.
    #[error("recording is corrupt, truncated, reordered or not sealed with this key (chunk {0} failed authentication)")]
    Corrupt(u32),
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key pair whose public key wrapped the content key.
    pub key_pair_id: String,
    /// RSA-OAEP ciphertext of the content key.
    pub wrapped_key: Vec<u8>,
    /// Nonce prefix.
    pub nonce_prefix: [u8; 7],
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The header's exact bytes (the associated data of every chunk).
    pub bytes: Vec<u8>,
}

impl Header {
    fn encode(
        key_pair_id: &str,
        wrapped_key: &[u8],
        nonce_prefix: [u8; 7],
        chunk_size: u32,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + key_pair_id.len() + wrapped_key.len());
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.push(key_pair_id.len() as u8);
        b.extend_from_slice(key_pair_id.as_bytes());
        b.extend_from_slice(&(wrapped_key.len() as u16).to_be_bytes());
        b.extend_from_slice(wrapped_key);
        b.extend_from_slice(&nonce_prefix);
        b.extend_from_slice(&chunk_size.to_be_bytes());
        b
    }

    /// Reads and checks a header from the start of `r`.
    pub fn read(r: &mut impl Read) -> Result<Header, RecordingError> {
        let mut bytes = Vec::new();
        let mut take =
            |n: usize, what: &str, bytes: &mut Vec<u8>| -> Result<Vec<u8>, RecordingError> {
                let mut buf = vec![0u8; n];
                r.read_exact(&mut buf).map_err(|_| {
                    RecordingError::Header(format!("file ends inside the header ({what})"))
                })?;
                bytes.extend_from_slice(&buf);
                Ok(buf)
            };
        if take(7, "magic", &mut bytes)? != MAGIC {
            return Err(RecordingError::Header("magic is not KEKDREC".into()));
        }
        let version = take(1, "version", &mut bytes)?[0];
        if version != VERSION {
            return Err(RecordingError::Header(format!(
                "format version {version} is not supported (only {VERSION})"
            )));
        }
        let id_len = take(1, "key-pair id length", &mut bytes)?[0] as usize;
        let id = String::from_utf8(take(id_len, "key-pair id", &mut bytes)?)
            .map_err(|_| RecordingError::Header("key-pair id is not text".into()))?;
        // Only a real id goes any further (into a URL, a log, a request).
        if !crate::domain::is_key_pair_id(&id) {
            return Err(RecordingError::Header(format!(
                "key-pair id {:?} is not kek- and 16 hex digits",
                id.chars().take(40).collect::<String>()
            )));
        }
        let wl = take(2, "wrapped key length", &mut bytes)?;
        let wrapped_len = u16::from_be_bytes([wl[0], wl[1]]) as usize;
        let wrapped_key = take(wrapped_len, "wrapped key", &mut bytes)?;
        let nonce_prefix: [u8; 7] = take(7, "nonce prefix", &mut bytes)?
            .try_into()
            .expect("7 bytes");
        let cs = take(4, "chunk size", &mut bytes)?;
        let chunk_size = u32::from_be_bytes([cs[0], cs[1], cs[2], cs[3]]);
        // Bounded so that a crafted header cannot make an opener allocate
        // much: the pipeline holds a few chunks at a time.
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(RecordingError::Header(format!(
                "chunk size {chunk_size} is out of range (1 to {MAX_CHUNK_SIZE})"
            )));
        }
        Ok(Header {
            key_pair_id: id,
            wrapped_key,
            nonce_prefix,
            chunk_size,
            bytes,
        })
    }
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

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

/// Seals `input` into `output` for the key pair `key_pair_id` whose SPKI DER
/// public key is `public_key_der`. `progress` gets the plaintext bytes done.
pub fn seal(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    key_pair_id: &str,
    public_key_der: &[u8],
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    if !crate::domain::is_key_pair_id(key_pair_id) {
        return Err(RecordingError::Header(
            "the key-pair id must be kek- and 16 hex digits".into(),
        ));
    }
    let public =
        PublicEncryptingKey::from_der(public_key_der).map_err(|_| RecordingError::PublicKey)?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| RecordingError::PublicKey)?;
    let content_key = Zeroizing::new(crate::aead::random::<32>());
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &*content_key, &mut wrapped, None)
        .map_err(|_| RecordingError::PublicKey)?
        .to_vec();
    let prefix = crate::aead::random::<7>();
    let header = Header::encode(key_pair_id, &wrapped, prefix, CHUNK_SIZE as u32);
    output.write_all(&header)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &*content_key).expect("32-byte key"));
    drop(content_key);

    let total = pipeline(
        input,
        output,
        CHUNK_SIZE,
        TAG_LEN,
        progress,
        |counter, buf, len, last| {
            let tag = key
                .seal_in_place_separate_tag(
                    nonce(&prefix, counter, last),
                    Aad::from(&header[..]),
                    &mut buf[..len],
                )
                .map_err(|_| RecordingError::Corrupt(counter))?;
            buf[len..len + TAG_LEN].copy_from_slice(tag.as_ref());
            Ok((len + TAG_LEN, len))
        },
    )?;
    Ok(total)
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
fn pipeline(
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

/// Opens `input` into `output`; `unwrap` turns (key-pair id, wrapped key)
/// into the 32-byte content key (the daemon's `unwrap`, or a local private
/// key). Plaintext is written chunk by chunk only after each chunk
/// authenticated; on error, callers discard the output (kekctl writes to a
/// temporary file and renames on success).
pub fn open(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    unwrap: impl FnOnce(&Header) -> Result<Zeroizing<Vec<u8>>, String>,
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    let header = Header::read(input)?;
    let content_key = unwrap(&header).map_err(RecordingError::Unwrap)?;
    open_body(&header, content_key, input, output, progress)
}

/// The body half of [`open`], for callers that read the header and unwrap
/// the content key themselves (e.g. asynchronously through the daemon).
pub fn open_body(
    header: &Header,
    content_key: Zeroizing<Vec<u8>>,
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    if content_key.len() != 32 {
        return Err(RecordingError::Unwrap(
            "the content key is not 32 bytes".into(),
        ));
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &content_key).expect("32-byte key"));
    drop(content_key);
    let size = header.chunk_size as usize + TAG_LEN;
    pipeline(
        input,
        output,
        size,
        0,
        progress,
        |counter, buf, len, last| {
            if len < TAG_LEN {
                return Err(RecordingError::Corrupt(counter));
            }
            let plain = key
                .open_in_place(
                    nonce(&header.nonce_prefix, counter, last),
                    Aad::from(&header.bytes[..]),
                    &mut buf[..len],
                )
                .map_err(|_| RecordingError::Corrupt(counter))?
                .len();
            Ok((plain, plain))
        },
    )
}

/// A wrapped content key that does not decrypt. Opaque on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the wrapped content key does not decrypt with this key pair")]
pub struct BadWrappedKey;

/// Unwraps a content key with an RSA private key (PKCS#8 DER), RSA-OAEP
/// SHA-256/MGF1-SHA-256. One opaque error whatever the cause (no padding
/// oracle).
pub fn unwrap_with_private_key(
    private: &aws_lc_rs::rsa::PrivateDecryptingKey,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BadWrappedKey> {
    let oaep = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(private.clone())
        .map_err(|_| BadWrappedKey)?;
    let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
    let n = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut out, None)
        .map_err(|_| BadWrappedKey)?
        .len();
    if n != 32 {
        return Err(BadWrappedKey);
    }
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyBits;
    use aws_lc_rs::rsa::PrivateDecryptingKey;

    fn pair() -> (
        crate::keypair::GeneratedKeyPair,
        aws_lc_rs::rsa::PrivateDecryptingKey,
    ) {
        let g = crate::keypair::generate(KeyBits::Rsa2048).unwrap();
        let k = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&g.private_pkcs8).unwrap();
        (g, k)
    }

    fn sealed(data: &[u8], g: &crate::keypair::GeneratedKeyPair) -> Vec<u8> {
        let mut out = Vec::new();
        seal(&mut &data[..], &mut out, &g.id, &g.public_key_der, |_| {}).unwrap();
        out
    }

    fn opened(
        file: &[u8],
        k: &aws_lc_rs::rsa::PrivateDecryptingKey,
    ) -> Result<Vec<u8>, RecordingError> {
        let mut out = Vec::new();
        open(
            &mut &file[..],
            &mut out,
            |h| unwrap_with_private_key(k, &h.wrapped_key).map_err(|_| "no".into()),
            |_| {},
        )?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_size_around_chunk_boundaries() {
        let (g, k) = pair();
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE,
            3 * CHUNK_SIZE + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let file = sealed(&data, &g);
            assert_eq!(opened(&file, &k).unwrap(), data, "len {len}");
            let h = Header::read(&mut &file[..]).unwrap();
            assert_eq!(h.key_pair_id, g.id);
            let chunks = len.div_ceil(CHUNK_SIZE).max(1); // a full last chunk needs no empty one after it
            assert_eq!(
                file.len(),
                h.bytes.len() + len + chunks * TAG_LEN,
                "len {len}"
            );
        }
    }

    #[test]
    fn tampering_of_any_kind_is_detected() {
        let (g, k) = pair();
        let data: Vec<u8> = (0..3 * CHUNK_SIZE + 100).map(|i| i as u8).collect();
        let file = sealed(&data, &g);
        let hlen = Header::read(&mut &file[..]).unwrap().bytes.len();
        let c = CHUNK_SIZE + TAG_LEN;
        // A flipped bit anywhere: header fields and each chunk.
        for pos in [0, 8, hlen - 5, hlen - 1, hlen, hlen + c + 3, file.len() - 1] {
            let mut bad = file.clone();
            bad[pos] ^= 0x01;
            assert!(opened(&bad, &k).is_err(), "flip at {pos}");
        }
        // Truncation at a chunk boundary, and mid-chunk.
        assert!(matches!(
            opened(&file[..hlen + 2 * c], &k),
            Err(RecordingError::Corrupt(1))
        ));
        assert!(opened(&file[..file.len() - 10], &k).is_err());
        assert!(opened(&file[..hlen], &k).is_err());
        // Reordering and duplication of chunks.
        let body = &file[hlen..];
        let mut swapped = file[..hlen].to_vec();
        swapped.extend_from_slice(&body[c..2 * c]);
        swapped.extend_from_slice(&body[..c]);
        swapped.extend_from_slice(&body[2 * c..]);
        assert!(opened(&swapped, &k).is_err());
        let mut dup = file[..hlen + c].to_vec();
        dup.extend_from_slice(body);
        assert!(opened(&dup, &k).is_err());
        // Another key pair.
        let (_, other) = pair();
        assert!(matches!(
            opened(&file, &other),
            Err(RecordingError::Unwrap(_))
        ));
    }

    /// The committed test vector (tests/vectors/recording-v1) opens to the
    /// documented plaintext — the format cannot drift unnoticed.
    #[test]
    fn the_committed_test_vector_opens() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/recording-v1");
        let pem_text = std::fs::read_to_string(dir.join("private.pem")).unwrap();
        let key =
            PrivateDecryptingKey::from_pkcs8(pem::parse(pem_text).unwrap().contents()).unwrap();
        let file = std::fs::read(dir.join("sealed.kekdrec")).unwrap();
        let plain = opened(&file, &key).unwrap();
        let want: Vec<u8> = (0..200_000usize)
            .map(|i| ((31 * i + i / 7) % 251) as u8)
            .collect();
        assert_eq!(plain, want);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &plain);
        let expected = std::fs::read_to_string(dir.join("plaintext.sha256")).unwrap();
        assert_eq!(hex::encode(digest.as_ref()), expected.trim());
        assert_eq!(
            Header::read(&mut &file[..]).unwrap().key_pair_id,
            "kek-cbdb738127c477bd"
        );
    }

    #[test]
    fn header_errors_name_the_field() {
        let e = Header::read(&mut &b"NOTAREC\x01"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic"), "{e}");
        let e = Header::read(&mut &b"KEKDREC\x07"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 7"), "{e}");
        let e = Header::read(&mut &b"KEKDREC\x01\x05ab"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends inside the header (key-pair id)"), "{e}");
    }

    /// Regression: kekctl put the header's key-pair id into the unwrap URL
    /// unescaped (`…/unwrap?x=#` reached the real key pair): a header whose
    /// id is not a key-pair id is not a recording.
    #[test]
    fn a_header_id_that_is_not_a_key_pair_id_is_refused() {
        let id = b"kek-0123456789abcdef/unwrap?x=#";
        let mut h = b"KEKDREC\x01".to_vec();
        h.push(id.len() as u8);
        h.extend_from_slice(id);
        h.extend_from_slice(&[0, 1, 0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        let e = Header::read(&mut &h[..]).unwrap_err().to_string();
        assert!(e.contains("is not kek- and 16 hex digits"), "{e}");
    }
}
