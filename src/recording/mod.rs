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
//! Version 2 is the same but for the key: after the version byte a key
//! type (`0x01`: X-Wing, ML-KEM-768 + X25519) and in place of the wrapped
//! key the 1,120-byte encapsulation, whose shared secret *is* the content
//! key ([`crate::hybrid`]). Version 1 recordings open forever.
//!
//! The STREAM construction (as in age): the counter orders the chunks, the
//! flag marks the end, and the header is authenticated with every chunk, so
//! truncation, reordering, duplication, a flipped bit anywhere or a wrong key
//! all fail authentication. Sealing and opening stream in constant memory.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use std::io::{Read, Write};
use zeroize::Zeroizing;

mod pipeline;
use pipeline::pipeline;

/// File magic.
pub const MAGIC: &[u8; 7] = b"KEKDREC";
/// Format version of recordings sealed for RSA key pairs.
pub const VERSION: u8 = 1;
/// Format version of recordings sealed for hybrid (post-quantum) key pairs.
pub const VERSION_HYBRID: u8 = 2;
/// Version 2's key-type byte for X-Wing.
const KEY_TYPE_XWING: u8 = 0x01;
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
    /// The hybrid public key cannot be used.
    #[error("the public key is not an X-Wing (ML-KEM-768 + X25519) public key of 1216 bytes")]
    HybridPublicKey,
    /// The content key could not be unwrapped (wrong key pair, or the daemon
    /// refused).
    #[error("the content key could not be unwrapped: {0}")]
    Unwrap(String),
    /// A chunk failed authentication: truncated, reordered, duplicated,
    /// modified, or sealed under another key.
    #[error("recording is corrupt, truncated, reordered or not sealed with this key (chunk {0} failed authentication)")]
    Corrupt(u32),
}

/// How a recording's content key is protected, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kem {
    /// Version 1: RSA-OAEP (SHA-256, MGF1-SHA-256) of a random content key.
    RsaOaep,
    /// Version 2, key type `0x01`: an X-Wing encapsulation whose shared
    /// secret is the content key.
    XWing,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// How the content key is protected (the format version says).
    pub kem: Kem,
    /// The key pair whose public key wrapped the content key.
    pub key_pair_id: String,
    /// The protected content key: RSA-OAEP ciphertext (version 1) or the
    /// X-Wing encapsulation (version 2). Either is what a player sends to
    /// kekd's unwrap as `wrapped_key`.
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
        kem: Kem,
        key_pair_id: &str,
        wrapped_key: &[u8],
        nonce_prefix: [u8; 7],
        chunk_size: u32,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + key_pair_id.len() + wrapped_key.len());
        b.extend_from_slice(MAGIC);
        match kem {
            Kem::RsaOaep => b.push(VERSION),
            Kem::XWing => b.extend_from_slice(&[VERSION_HYBRID, KEY_TYPE_XWING]),
        }
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
        let kem = match take(1, "version", &mut bytes)?[0] {
            VERSION => Kem::RsaOaep,
            VERSION_HYBRID => match take(1, "key type", &mut bytes)?[0] {
                KEY_TYPE_XWING => Kem::XWing,
                t => {
                    return Err(RecordingError::Header(format!(
                        "key type {t} is not supported (only {KEY_TYPE_XWING}, x25519-mlkem768)"
                    )))
                }
            },
            v => {
                return Err(RecordingError::Header(format!(
                    "format version {v} is not supported (only {VERSION} and {VERSION_HYBRID})"
                )))
            }
        };
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
        if kem == Kem::XWing && wrapped_len != crate::hybrid::CIPHERTEXT_LEN {
            return Err(RecordingError::Header(format!(
                "an X-Wing encapsulation is {} bytes, not {wrapped_len}",
                crate::hybrid::CIPHERTEXT_LEN
            )));
        }
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
            kem,
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

/// Seals `input` into `output` for the key pair `key_pair_id` whose SPKI DER
/// public key is `public_key_der` (format version 1). `progress` gets the
/// plaintext bytes done.
pub fn seal(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    key_pair_id: &str,
    public_key_der: &[u8],
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    check_id(key_pair_id)?;
    let public =
        PublicEncryptingKey::from_der(public_key_der).map_err(|_| RecordingError::PublicKey)?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| RecordingError::PublicKey)?;
    let content_key = Zeroizing::new(crate::aead::random::<32>());
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &*content_key, &mut wrapped, None)
        .map_err(|_| RecordingError::PublicKey)?
        .to_vec();
    let sealing = Sealing {
        kem: Kem::RsaOaep,
        key_pair_id,
        wrapped_key: &wrapped,
        content_key: &content_key,
    };
    seal_body(input, output, sealing, progress)
}

/// Seals `input` into `output` for the hybrid key pair `key_pair_id` whose
/// X-Wing public key is `public_key` (format version 2): the content key is
/// the shared secret of a fresh encapsulation.
pub fn seal_hybrid(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    key_pair_id: &str,
    public_key: &[u8],
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    check_id(key_pair_id)?;
    let (encapsulation, content_key) =
        crate::hybrid::encapsulate(public_key).map_err(|_| RecordingError::HybridPublicKey)?;
    let sealing = Sealing {
        kem: Kem::XWing,
        key_pair_id,
        wrapped_key: &encapsulation,
        content_key: &content_key,
    };
    seal_body(input, output, sealing, progress)
}

fn check_id(key_pair_id: &str) -> Result<(), RecordingError> {
    if crate::domain::is_key_pair_id(key_pair_id) {
        Ok(())
    } else {
        Err(RecordingError::Header(
            "the key-pair id must be kek- and 16 hex digits".into(),
        ))
    }
}

/// What a recording is sealed with, whichever the version.
struct Sealing<'a> {
    kem: Kem,
    key_pair_id: &'a str,
    /// The protected content key, as the header carries it.
    wrapped_key: &'a [u8],
    content_key: &'a [u8; 32],
}

/// Writes the header, then the chunks of `input` sealed under the content
/// key with a fresh nonce prefix.
fn seal_body(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send + ?Sized),
    s: Sealing<'_>,
    progress: impl FnMut(u64),
) -> Result<u64, RecordingError> {
    let prefix = crate::aead::random::<7>();
    let header = Header::encode(
        s.kem,
        s.key_pair_id,
        s.wrapped_key,
        prefix,
        CHUNK_SIZE as u32,
    );
    output.write_all(&header)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, s.content_key).expect("32-byte key"));

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

/// The content key of a version 2 recording: the shared secret of its
/// X-Wing `encapsulation` under the hybrid private key. Opaque on failure.
/// A wrong key or a tampered encapsulation gives another secret (ML-KEM's
/// implicit rejection), which the first chunk's tag refuses.
pub fn unwrap_with_hybrid_key(
    private: &crate::hybrid::HybridPrivateKey,
    encapsulation: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BadWrappedKey> {
    let ss = private
        .decapsulate(encapsulation)
        .map_err(|_| BadWrappedKey)?;
    Ok(Zeroizing::new(ss.to_vec()))
}

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
        let g = crate::keypair::generate(crate::domain::KeyType::Rsa(KeyBits::Rsa2048)).unwrap();
        let k = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&g.private_key).unwrap();
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

    #[test]
    fn a_hybrid_recording_opens_with_its_key_pair_only() {
        use crate::hybrid::HybridPrivateKey;
        let k = HybridPrivateKey::generate().unwrap();
        let id = "kek-00112233445566aa";
        for len in [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let mut file = Vec::new();
            seal_hybrid(&mut &data[..], &mut file, id, k.public_key(), |_| {}).unwrap();
            let h = Header::read(&mut &file[..]).unwrap();
            assert_eq!((h.kem, h.key_pair_id.as_str()), (Kem::XWing, id));
            assert_eq!(&file[7..9], &[VERSION_HYBRID, KEY_TYPE_XWING]);
            let open_with = |key: &HybridPrivateKey, file: &[u8]| {
                let mut out = Vec::new();
                open(
                    &mut &file[..],
                    &mut out,
                    |h| unwrap_with_hybrid_key(key, &h.wrapped_key).map_err(|_| "no".into()),
                    |_| {},
                )
                .map(|_| out)
            };
            assert_eq!(open_with(&k, &file).unwrap(), data);
            // Another key pair's secret is refused by the first chunk.
            let other = HybridPrivateKey::generate().unwrap();
            assert!(matches!(
                open_with(&other, &file),
                Err(RecordingError::Corrupt(0))
            ));
            // So is a tampered encapsulation (inside the header).
            let mut bad = file.clone();
            bad[40] ^= 1;
            assert!(matches!(
                open_with(&k, &bad),
                Err(RecordingError::Corrupt(0))
            ));
        }
        // An RSA public key is not a hybrid one, and the other way round.
        let (g, _) = pair();
        let e = seal_hybrid(
            &mut &b"x"[..],
            &mut Vec::new(),
            id,
            &g.public_key_der,
            |_| {},
        );
        assert!(matches!(e, Err(RecordingError::HybridPublicKey)));
        let e = seal(&mut &b"x"[..], &mut Vec::new(), id, k.public_key(), |_| {});
        assert!(matches!(e, Err(RecordingError::PublicKey)));
    }

    /// The committed v2 vector, sealed by the independent Python sealer.
    #[test]
    fn the_committed_version_2_vector_opens() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        let sk = std::fs::read_to_string(root.join("xwing/private.hex")).unwrap();
        let key =
            crate::hybrid::HybridPrivateKey::from_bytes(&hex::decode(sk.trim()).unwrap()).unwrap();
        let file = std::fs::read(root.join("recording-v2/sealed.kekdrec")).unwrap();
        let mut plain = Vec::new();
        open(
            &mut &file[..],
            &mut plain,
            |h| unwrap_with_hybrid_key(&key, &h.wrapped_key).map_err(|_| "no".into()),
            |_| {},
        )
        .unwrap();
        let want: Vec<u8> = (0..200_000usize)
            .map(|i| ((31 * i + i / 7) % 251) as u8)
            .collect();
        assert_eq!(plain, want);
        let h = Header::read(&mut &file[..]).unwrap();
        assert_eq!(
            (h.kem, h.key_pair_id.as_str()),
            (Kem::XWing, "kek-5d1f0e2a9c4b7a31")
        );
    }

    #[test]
    fn a_version_2_header_names_its_key_type_and_encapsulation_length() {
        let e = Header::read(&mut &b"KEKDREC\x02\x09"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key type 9 is not supported"), "{e}");
        let id = b"kek-0123456789abcdef";
        let mut h = b"KEKDREC\x02\x01".to_vec();
        h.push(id.len() as u8);
        h.extend_from_slice(id);
        h.extend_from_slice(&384u16.to_be_bytes());
        let e = Header::read(&mut &h[..]).unwrap_err().to_string();
        assert!(e.contains("encapsulation is 1120 bytes, not 384"), "{e}");
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
