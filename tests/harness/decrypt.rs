//! An independent decryptor of exported envelopes, written from the
//! documented format (docs/envelope-format.md), not from kekd's code, so the
//! spec is tested too.

use super::daemon::TestDaemon;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kekd::api::views::ExportView;
use kekd::domain::{KeyPairRecord, KeyState};
use kekd::store::{Listed, RedbStore};

/// The secrets behind one exported envelope, recovered the way a customer
/// would in a break-glass case: KMS `Decrypt` with the envelope's context,
/// then AES-256-GCM with the canonical context as associated data.
pub struct Recovered {
    /// The plaintext data key.
    pub data_key: Vec<u8>,
    /// The private key: PKCS#8 DER (RSA) or the expanded X-Wing key.
    pub private_pkcs8: Vec<u8>,
}

/// The README's canonical context encoding, written independently of kekd.
pub fn canonical_context(ctx: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in ctx {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Decrypts an exported envelope through moto; panics if anything fails.
pub async fn recover(kms: &aws_sdk_kms::Client, export: &ExportView) -> Recovered {
    let json = serde_json::to_value(export).unwrap();
    let env = &json["envelope"];
    let ctx: std::collections::BTreeMap<String, String> =
        serde_json::from_value(env["encryption_context"].clone()).unwrap();
    let blob = B64
        .decode(env["encrypted_data_key"].as_str().unwrap())
        .unwrap();
    let out = kms
        .decrypt()
        .key_id(env["wrapping_key_arn"].as_str().unwrap())
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
        .set_encryption_context(Some(ctx.clone().into_iter().collect()))
        .send()
        .await
        .expect("KMS Decrypt of the exported data key");
    let data_key = out.plaintext().unwrap().as_ref().to_vec();
    let nonce: [u8; 12] = B64
        .decode(env["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut ct = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key).unwrap());
    let pt = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(canonical_context(&ctx)),
            &mut ct,
        )
        .expect("AES-GCM open of the exported private key")
        .to_vec();
    Recovered {
        data_key,
        private_pkcs8: pt,
    }
}

impl TestDaemon {
    /// Exports key pair `id`, decrypts its private key through `kms` and
    /// asserts it matches `public_key_pem`; returns the export.
    pub async fn assert_decrypts(
        &self,
        kms: &aws_sdk_kms::Client,
        id: &str,
        public_key_pem: &str,
    ) -> ExportView {
        let export: ExportView = self.client().envelope(id).await.unwrap();
        let secrets = recover(kms, &export).await;
        assert_eq!(
            public_der_of(&secrets.private_pkcs8),
            pem_der(public_key_pem),
            "{id} decrypts and matches"
        );
        export
    }
}

/// The public key of a recovered private key, as kekd stores it: the SPKI
/// DER of a PKCS#8 RSA key, or — for the 2,464-byte expanded X-Wing key —
/// ML-KEM's encapsulation key read from inside the decapsulation key
/// (FIPS 203: after the 1,152 bytes of `dk_PKE`) and the X25519 public key
/// computed from the scalar, checked against the copy the key carries.
/// Written from docs/recording-format.md, not from kekd's code.
pub fn public_der_of(private_pkcs8: &[u8]) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    if private_pkcs8.len() == 2464 {
        let (ek, sk_x, pk_x) = (
            &private_pkcs8[1152..2336],
            &private_pkcs8[2400..2432],
            &private_pkcs8[2432..],
        );
        let x =
            aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::X25519, sk_x)
                .expect("an X25519 scalar");
        let computed = x.compute_public_key().unwrap();
        assert_eq!(
            computed.as_ref(),
            pk_x,
            "the key's X25519 public key is its scalar's"
        );
        return [ek, pk_x].concat();
    }
    let k =
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(private_pkcs8).expect("PKCS#8 RSA key");
    k.public_key().as_der().unwrap().as_ref().to_vec()
}

/// PEM → DER.
pub fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().contents().to_vec()
}

/// Checks a store file directly (I2): exactly one active key pair, none left
/// pending, and every stored private key decrypts through KMS and matches
/// its public key. Returns the records.
pub async fn assert_store_consistent(
    store_path: &std::path::Path,
    kms: &aws_sdk_kms::Client,
) -> Vec<KeyPairRecord> {
    let store = RedbStore::open(store_path)
        .await
        .expect("store opens after a crash");
    assert_consistent(&store, kms).await
}

/// [`assert_store_consistent`] for any store.
pub async fn assert_consistent(
    store: &dyn kekd::store::KeyStore,
    kms: &aws_sdk_kms::Client,
) -> Vec<KeyPairRecord> {
    let records: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| match l {
            Listed::Ok(r) => *r,
            Listed::Corrupt { id, problem } => panic!("record {id} corrupt after crash: {problem}"),
        })
        .collect();
    let active = records
        .iter()
        .filter(|r| r.state == KeyState::Active)
        .count();
    assert_eq!(
        active,
        1,
        "exactly one active key pair: {:?}",
        records.iter().map(|r| (&r.id, r.state)).collect::<Vec<_>>()
    );
    assert_eq!(
        store.active().await.unwrap().unwrap().state,
        KeyState::Active
    );
    for r in &records {
        let export = ExportView {
            envelope: r.envelope.clone(),
            public_key_pem: kekd::keypair::public_key_pem(r.algorithm, &r.public_key_der),
            state: r.state,
        };
        let secrets = recover(kms, &export).await;
        assert_eq!(
            public_der_of(&secrets.private_pkcs8),
            r.public_key_der,
            "{} decrypts and matches",
            r.id
        );
    }
    records
}
