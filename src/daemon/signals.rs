//! Signals: SIGUSR1 is Change Key Now, SIGHUP reloads the configuration,
//! SIGXFSZ is only logged. (SIGTERM and SIGINT stop the daemon; see
//! `mod.rs`.)

use super::systemd::notify;
use crate::reload::Reloader;
use std::sync::Arc;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

/// SIGUSR1 = Change Key Now. Signals that arrive while a request is queued or
/// a rotation runs are folded into it.
pub(crate) async fn change_key_now_on_usr1(
    mut usr1: Signal,
    orgs: std::sync::Arc<crate::orgs::Orgs<crate::api::state::AppState>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = usr1.recv() => if got.is_none() { return },
        }
        // Every organization: an operator's "Change Key Now" for the host.
        orgs.rotate_all();
        tracing::info!(
            organizations = orgs.all().len(),
            "SIGUSR1: Change Key Now requested for every active organization"
        );
    }
}

/// SIGHUP = reload, told to systemd as RELOADING=1 … READY=1.
pub(crate) async fn reload_on_hup(
    mut hup: Signal,
    reloader: Arc<Reloader>,
    orgs: Arc<crate::orgs::Orgs<crate::api::state::AppState>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::info!("SIGHUP: reloading the configuration");
        let usec = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = i128::from(usec.tv_sec) * 1_000_000 + i128::from(usec.tv_nsec) / 1_000;
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::MonotonicUsec(usec),
        ]);
        let out = reloader.reload().await;
        if out.outcome == crate::domain::ReloadResult::Applied {
            orgs.follow_file().await;
        }
        let status = format!("reload {}: {}", out.outcome, out.message);
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
    }
}

/// SIGXFSZ (a write reached `RLIMIT_FSIZE`) would kill the process by
/// default, losing the chance to fail the write cleanly; with a handler the
/// write fails with `EFBIG`, which the audit trail and the store report and
/// recover from like a full disk.
pub(crate) async fn log_file_size_limit(mut xfsz: Signal, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = xfsz.recv() => if got.is_none() { return },
        }
        tracing::warn!("a write reached the file size limit (SIGXFSZ, RLIMIT_FSIZE); it fails like a full disk");
    }
}
