//! The inputs kekd takes from outside, as functions of bytes: the fuzz
//! targets in `fuzz/` call them, and `tests/fuzz_corpus.rs` replays the
//! committed corpus through them on every test run. Each must return (with
//! an error or not) for any input — never panic, never hang.

use crate::api::views::{HistoryQuery, UnwrapRequest};
use crate::domain::{Envelope, KeyPairRecord};
use zeroize::Zeroizing;

/// A recording as a player receives it: the header is parsed, then the body
/// opened with a fixed content key (authentication fails for almost every
/// input; the parsing and chunking around it is what is exercised).
pub fn recording(data: &[u8]) {
    let mut input = data;
    let Ok(header) = crate::recording::Header::read(&mut input) else {
        return;
    };
    let key = Zeroizing::new(vec![7u8; 32]);
    let _ = crate::recording::open_body(&header, key, &mut input, &mut std::io::sink(), |_| {});
}

/// An exported envelope, and a store record, as JSON.
pub fn envelope_json(data: &[u8]) {
    if let Ok(e) = serde_json::from_slice::<Envelope>(data) {
        let _ = serde_json::to_vec(&e);
    }
    if let Ok(r) = serde_json::from_slice::<KeyPairRecord>(data) {
        let _ = crate::keypair::public_key_pem(r.algorithm, &r.public_key_der);
    }
}

/// A configuration file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Settings::parse(text, "fuzz.toml");
    }
}

/// The API's request inputs: an unwrap body, a history query, a path.
pub fn api_request(data: &[u8]) {
    let _ = serde_json::from_slice::<UnwrapRequest>(data);
    let _ = serde_urlencoded::from_bytes::<HistoryQuery>(data);
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = crate::api::paths::required_role(&axum::http::Method::GET, path);
        let _ = crate::api::auth::bounded(path);
    }
}
