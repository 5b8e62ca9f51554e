//! A store with a long history, made fast: records written directly (one
//! import transaction), all sharing one real public key and a placeholder
//! envelope — they decode and list like real ones, but do not decrypt.
//! For history and scale tests and the benchmarks, never for decryption.

use kekd::domain::{
    context_for, Envelope, KeyAlgorithm, KeyPairRecord, KeyState, Reason, Schedule, ENVELOPE_V1,
};
use kekd::store::{KeyStore, RedbStore};
use std::path::Path;

/// Writes `n` key pairs into a new store at `path` (the newest active, the
/// rest retired, one second apart); returns their ids, oldest first.
pub async fn store_with_history(path: &Path, n: usize) -> Vec<String> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let store = RedbStore::open(path).await.unwrap();
    write_history(&store, n).await
}

/// Writes `n` key pairs into the empty `store` (the newest active, the rest
/// retired, one second apart); returns their ids, oldest first.
pub async fn write_history(store: &dyn KeyStore, n: usize) -> Vec<String> {
    write_scheduled_history(store, n, &Schedule::default()).await
}

/// [`write_history`] with the next rotation `schedule` says.
pub async fn write_scheduled_history(
    store: &dyn KeyStore,
    n: usize,
    schedule: &Schedule,
) -> Vec<String> {
    let public = fixture_public_key();
    let base = chrono::Utc::now() - chrono::Duration::seconds(n as i64 + 10);
    let records: Vec<KeyPairRecord> = (0..n)
        .map(|i| {
            let id = format!("kek-{:016x}", 0x1000_0000_0000 + i as u64);
            let at = base + chrono::Duration::seconds(i as i64);
            let last = i + 1 == n;
            KeyPairRecord {
                id: id.clone(),
                state: if last {
                    KeyState::Active
                } else {
                    KeyState::Retired
                },
                algorithm: KeyAlgorithm::Rsa,
                key_bits: 2048,
                reason: Reason::Scheduled,
                created_at: at,
                activated_at: Some(at),
                retired_at: (!last).then(|| at + chrono::Duration::seconds(1)),
                activates_at: None,
                wrapping_key_arn: "arn:aws:kms:us-east-1:123456789012:key/fixture".into(),
                public_key_der: public.clone(),
                envelope: Envelope {
                    format: ENVELOPE_V1.into(),
                    algorithm: KeyAlgorithm::Rsa,
                    key_pair_id: id.clone(),
                    wrapping_key_arn: "arn:aws:kms:us-east-1:123456789012:key/fixture".into(),
                    encryption_context: context_for("organization-id", "acme-test", &id),
                    encrypted_data_key: vec![0; 184],
                    nonce: vec![0; 12],
                    ciphertext: vec![0; 1232],
                    backups: Vec::new(),
                },
            }
        })
        .collect();
    let active = records.last().map(|r| r.id.clone());
    store
        .import(&records, active.as_deref(), schedule)
        .await
        .unwrap();
    records.into_iter().map(|r| r.id).collect()
}

/// One real public key for fixtures (generating one per store would cost
/// 10,000 RSA generations for 10,000 organizations).
pub fn fixture_public_key() -> Vec<u8> {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        kekd::keypair::generate(kekd::domain::KeyType::Rsa(kekd::domain::KeyBits::Rsa2048))
            .unwrap()
            .public_key_der
            .clone()
    })
    .clone()
}

/// Writes organizations `org-00001` … `org-{n-1}` (the declared one is the
/// daemon's own) into the store at `path`, each with one active key pair
/// (RSA-2048 settings); `kms_key(i)` names organization `i`'s KMS key
/// (`None`: the local root key). Reports progress every 1,000.
pub async fn write_orgs(path: &Path, n: usize, kms_key: impl Fn(usize) -> Option<String>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let registry = kekd::store::RedbRegistry::open(path).await.unwrap();
    write_orgs_into(&registry, n, kms_key).await
}

/// [`write_orgs`] into any store's organizations (a fleet's table).
pub async fn write_orgs_into(
    registry: &dyn kekd::store::Registry,
    n: usize,
    kms_key: impl Fn(usize) -> Option<String>,
) {
    let spec = |i| kekd::domain::OrgSpec {
        kms_key_arn: kms_key(i),
        key_bits: Some(2048),
        ..kekd::domain::OrgSpec::default()
    };
    write_org_specs_into(registry, n, spec, &Schedule::default()).await
}

/// [`write_orgs`] with each organization's own fields: `spec(i)` is
/// organization `i`'s spec (its id is set here), and every one's next
/// rotation as `schedule` says.
pub async fn write_org_specs_into(
    registry: &dyn kekd::store::Registry,
    n: usize,
    spec: impl Fn(usize) -> kekd::domain::OrgSpec,
    schedule: &Schedule,
) {
    use kekd::domain::{OrgRecord, OrgSource, OrgSpec};
    use kekd::store::Expect;
    let started = std::time::Instant::now();
    for i in 1..n {
        let id = format!("org-{i:05}");
        let spec = OrgSpec {
            id: id.clone(),
            ..spec(i)
        };
        let record = OrgRecord::new(spec, OrgSource::Api, chrono::Utc::now());
        registry.save_org(&record, Expect::Absent).await.unwrap();
        let store = registry.keys(&id).await.unwrap();
        write_scheduled_history(&*store, 1, schedule).await;
        if i % 1000 == 0 {
            eprintln!(
                "  fixture: {i}/{n} organizations written ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}
