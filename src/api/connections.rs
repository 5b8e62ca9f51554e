//! The connections the API holds, and who may open another. A cap on all
//! connections stays below the descriptor limit, a cap per peer uid keeps one
//! local user from taking them all, and when the cap is reached the oldest
//! *idle* connection (no request in flight: a keep-alive client, or a
//! half-sent request) is closed to make room — so a new status request
//! always gets in, while work in progress is never cut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Limits on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// All connections at once.
    pub(crate) total: usize,
    /// Connections of one peer uid (root and the daemon's own uid are
    /// exempt).
    pub(crate) per_uid: usize,
}

struct Entry {
    uid: u32,
    opened: Instant,
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

/// Every open connection.
pub(crate) struct Connections {
    limits: Limits,
    exempt: [u32; 2],
    open: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
}

/// A connection's place in the registry; leaving it (drop) frees the place.
pub(crate) struct Slot {
    id: u64,
    registry: Arc<Connections>,
    /// Requests in flight on this connection (a response body still being
    /// sent counts).
    pub(crate) busy: Arc<AtomicUsize>,
    /// Cancelled when the connection should close (eviction, shutdown).
    pub(crate) close: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::sync::lock(&self.registry.open).remove(&self.id);
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This uid holds its share already.
    PerUid,
    /// Every place is taken by a connection with work in flight.
    Full,
}

impl Connections {
    pub(crate) fn new(limits: Limits, daemon_uid: u32) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            exempt: [0, daemon_uid],
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        })
    }

    /// Admits a connection of `uid`, closing the oldest idle one if the cap
    /// is reached.
    pub(crate) fn admit(self: &Arc<Self>, uid: u32) -> Result<Slot, Refused> {
        let mut open = crate::sync::lock(&self.open);
        if !self.exempt.contains(&uid)
            && open.values().filter(|e| e.uid == uid).count() >= self.limits.per_uid
        {
            return Err(Refused::PerUid);
        }
        if open.len() >= self.limits.total {
            let oldest_idle = open
                .iter()
                .filter(|(_, e)| e.busy.load(Ordering::SeqCst) == 0 && !e.close.is_cancelled())
                .min_by_key(|(_, e)| e.opened)
                .map(|(id, _)| *id);
            match oldest_idle {
                Some(id) => {
                    if let Some(e) = open.get(&id) {
                        e.close.cancel(); // it leaves the registry as it closes
                    }
                }
                None => return Err(Refused::Full),
            }
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (busy, close) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
        open.insert(
            id,
            Entry {
                uid,
                opened: Instant::now(),
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        Ok(Slot {
            id,
            registry: self.clone(),
            busy,
            close,
        })
    }

    /// Asks every connection to close (shutdown): idle ones at once, busy
    /// ones after their response.
    pub(crate) fn close_all(&self) {
        for e in crate::sync::lock(&self.open).values() {
            e.close.cancel();
        }
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        crate::sync::lock(&self.open).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_closes_the_oldest_idle_connection_and_never_a_busy_one() {
        let c = Connections::new(
            Limits {
                total: 2,
                per_uid: 10,
            },
            999,
        );
        let a = c.admit(1000).unwrap();
        let b = c.admit(1001).unwrap();
        a.busy.fetch_add(1, Ordering::SeqCst);
        let newest = c.admit(1002).unwrap();
        assert!(!a.close.is_cancelled(), "busy: kept");
        assert!(b.close.is_cancelled(), "oldest idle: asked to close");
        drop(b);
        assert_eq!(c.count(), 2);
        // Everything busy: turned away.
        newest.busy.fetch_add(1, Ordering::SeqCst);
        assert_eq!(c.admit(1003).err(), Some(Refused::Full));
    }

    #[test]
    fn one_uid_cannot_take_every_place_but_root_and_the_daemon_can() {
        let c = Connections::new(
            Limits {
                total: 100,
                per_uid: 2,
            },
            999,
        );
        let _a = c.admit(1000).unwrap();
        let _b = c.admit(1000).unwrap();
        assert_eq!(c.admit(1000).err(), Some(Refused::PerUid));
        assert!(c.admit(1001).is_ok());
        let roots: Vec<_> = (0..5).map(|_| c.admit(0).unwrap()).collect();
        let daemons: Vec<_> = (0..5).map(|_| c.admit(999).unwrap()).collect();
        assert_eq!(roots.len() + daemons.len(), 10);
    }
}
