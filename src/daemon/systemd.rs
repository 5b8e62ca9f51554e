//! systemd: readiness, status lines and the watchdog. Outside systemd every
//! notification is a no-op; a failed one is logged, never fatal (zincati's
//! rule).

use crate::store::KeyStore;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// sd_notify, never fatal.
pub(crate) fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// READY=1 once a key pair is active and the socket listens (the socket is
/// bound before the daemon runs), then STATUS= on every change of the active
/// key.
pub(crate) async fn tell_systemd(
    mut active: watch::Receiver<Option<String>>,
    stop: CancellationToken,
) {
    let mut ready = false;
    loop {
        let id = active.borrow_and_update().clone();
        if let Some(id) = id {
            let status = format!("active key pair {id}");
            if ready {
                notify(&[sd_notify::NotifyState::Status(&status)]);
            } else {
                notify(&[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(&status),
                ]);
                ready = true;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = active.changed() => if changed.is_err() { return },
        }
    }
}

/// WATCHDOG=1 at half the interval systemd asks for (`WatchdogSec=`), but
/// only while a real health check passes: the store answers a read within
/// the interval and the rotation engine is alive. A wedged daemon stops
/// pinging and systemd restarts it. A fleet's remote store is not read
/// here: its outage is served through (degraded, last key kept), and a
/// restart would only lose the key it serves.
pub(crate) async fn watchdog(
    store: Arc<dyn KeyStore>,
    engine: watch::Receiver<Option<String>>,
    stop: CancellationToken,
) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        // Nothing to do outside a watchdog; end only with the daemon.
        stop.cancelled().await;
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let store_ok = store.fleet().is_some() || {
            let read = tokio::time::timeout(interval / 2, store.schedule()).await;
            matches!(read, Ok(Ok(_)))
        };
        let engine_ok = engine.has_changed().is_ok(); // Err once the engine is gone
        if store_ok && engine_ok {
            notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(
                store_ok,
                engine_ok,
                "health check failed; withholding the watchdog ping"
            );
        }
    }
}
