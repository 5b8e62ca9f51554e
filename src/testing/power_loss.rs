//! Power loss at every sync point of a rotation (invariant I2, made
//! deterministic): the store runs on a backend that keeps the durable image
//! apart from what was written, and a rotation is replayed against every
//! durable image it left behind — as if power had been lost right there,
//! dropping everything written since the last sync — then the store is
//! reopened (redb repairs it) and checked: exactly one active key pair,
//! nothing that was ever served lost, every private key decrypting and
//! matching. The technique is redb's own crash-consistency test's.

use crate::current::SharedCurrent;
use crate::domain::{KeyPairRecord, KeyState, Reason};
use crate::proof;
use crate::rotation::Rotator;
use crate::store::{decodable, KeyStore, RedbStore};
use std::sync::{Arc, Mutex};

/// The disk as the process sees it, and as it survives a power cut.
#[derive(Debug, Default)]
struct Disk {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Durable images recorded at each sync while `recording`.
    images: Vec<Vec<u8>>,
    recording: bool,
}

#[derive(Debug, Clone, Default)]
struct PowerLoss(Arc<Mutex<Disk>>);

impl PowerLoss {
    /// A disk whose content is `image`, written and durable.
    fn from_image(image: Vec<u8>) -> PowerLoss {
        PowerLoss(Arc::new(Mutex::new(Disk {
            written: image.clone(),
            durable: image,
            ..Disk::default()
        })))
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap()
    }
}

impl redb::StorageBackend for PowerLoss {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.disk().written.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let d = self.disk();
        let start = offset as usize;
        let src = d
            .written
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.disk().written.resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let mut d = self.disk();
        d.durable = d.written.clone();
        if d.recording {
            let image = d.durable.clone();
            d.images.push(image);
        }
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut d = self.disk();
        let end = offset as usize + data.len();
        if d.written.len() < end {
            d.written.resize(end, 0);
        }
        d.written[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

async fn store_on(disk: PowerLoss) -> RedbStore {
    RedbStore::open_with(
        Box::new(move || redb::Database::builder().create_with_backend(disk.clone())),
        "power-loss".into(),
    )
    .await
    .expect("the store opens after a power loss")
}

#[tokio::test]
async fn power_loss_at_every_sync_point_of_a_rotation_loses_nothing_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_, current): (Arc<dyn KeyStore>, SharedCurrent) = super::fixture(dir.path()).await;
    let provider = current.get().provider.clone();
    let disk = PowerLoss::default();
    let store: Arc<dyn KeyStore> = Arc::new(store_on(disk.clone()).await);
    let rotator = Rotator::new(store.clone(), current.clone());
    let served = rotator.rotate(Reason::Initial).await.unwrap();

    // Power may be lost anywhere from here on: before the first sync of the
    // rotation (the last durable image), or right after any of its syncs.
    {
        let mut d = disk.disk();
        let before = d.durable.clone();
        d.images.push(before);
        d.recording = true;
    }
    let rotated = rotator.rotate(Reason::ChangeKeyNow).await.unwrap();
    let images = std::mem::take(&mut disk.disk().images);
    assert!(images.len() >= 3, "a rotation syncs at least twice");

    let mut matrix = Vec::new();
    for (point, image) in images.iter().enumerate() {
        let store = store_on(PowerLoss::from_image(image.clone())).await;
        let records: Vec<KeyPairRecord> = decodable(store.list().await.unwrap());
        let active: Vec<&KeyPairRecord> = records
            .iter()
            .filter(|r| r.state == KeyState::Active)
            .collect();
        assert_eq!(active.len(), 1, "sync point {point}: exactly one active");
        assert_eq!(
            store.active().await.unwrap().unwrap().id,
            active[0].id,
            "sync point {point}: the active pointer agrees"
        );
        assert!(
            [&served.id, &rotated.id].contains(&&active[0].id),
            "sync point {point}: the active key pair was served or just activated"
        );
        assert!(
            records.iter().any(|r| r.id == served.id),
            "sync point {point}: the served key pair is never lost"
        );
        for r in &records {
            proof::prove(&*provider, r)
                .await
                .unwrap_or_else(|e| panic!("sync point {point}: {} does not decrypt: {e}", r.id));
        }
        let pending = records
            .iter()
            .filter(|r| r.state == KeyState::Pending)
            .count();
        matrix.push(format!(
            "sync point {point}: {} active, {} stored, {pending} pending (retired at start)",
            if active[0].id == served.id {
                "previous key pair"
            } else {
                "new key pair"
            },
            records.len()
        ));
    }
    // The last image is what the caller was told: the new key pair is
    // durable once rotate() returned.
    let last = store_on(PowerLoss::from_image(images.last().unwrap().clone())).await;
    assert_eq!(last.active().await.unwrap().unwrap().id, rotated.id);
    eprintln!("power-loss matrix:\n{}", matrix.join("\n"));
}
