//! Wiring: start-up, signals, graceful shutdown.
//!
//! [`Daemon::start`] does everything that can fail at start (state dir,
//! store, provider, socket) so the binary can report it and exit non-zero;
//! [`Daemon::run`] then serves until SIGTERM/SIGINT. Shutdown is a `watch`
//! channel: the API stops accepting, in-flight requests and an in-flight
//! rotation finish, then `run` returns — no `process::exit` anywhere.

use crate::api::routes::{router, AppState};
use crate::api::server::{self, BindError};
use crate::audit::Audit;
use crate::canary::Canary;
use crate::config::Settings;
use crate::kms_check::{self, PreflightError};
use crate::metrics::Metrics;
use crate::provider::local::RootKeyError;
use crate::provider::KeyProvider;
use crate::reload::Reloader;
use crate::rewrap::Rewrapper;
use crate::rotation::{Current, Engine, EngineState, RotationHandle, Rotator, SharedState};
use crate::store::{KeyState, KeyStore, Listed, Reason, RedbStore, StoreError};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, RwLock};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The state directory cannot be created or secured.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The local root key cannot be used.
    #[error(transparent)]
    RootKey(#[from] RootKeyError),
    /// The socket cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The KMS key is unusable and there is no active key pair to serve.
    #[error("preflight of the KMS key failed: {0}")]
    Preflight(#[from] PreflightError),
    /// Signal handlers cannot be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// A started daemon: store open, socket bound, not yet serving.
pub struct Daemon {
    settings: Arc<Settings>,
    listener: UnixListener,
    app: AppState,
    engine: Engine,
}

impl Daemon {
    /// Opens everything the daemon needs. Nothing is served yet.
    pub async fn start(
        settings: Settings,
        config_path: Option<std::path::PathBuf>,
    ) -> Result<Daemon, StartError> {
        disable_core_dumps();
        let settings = Arc::new(settings);
        let dir = &settings.state_dir;
        let dir_err = |source| StartError::StateDir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(dir_err)?;

        let store_path = settings.store_path();
        let store: Arc<dyn KeyStore> = Arc::new(
            tokio::task::spawn_blocking(move || RedbStore::open(&store_path))
                .await
                .expect("store open task")?,
        );
        let metrics = Arc::new(Metrics::new());
        let audit_path = settings.audit_path.clone();
        let audit = Arc::new(
            tokio::task::spawn_blocking(move || Audit::open(&audit_path))
                .await
                .expect("audit open task")?,
        );
        let provider =
            crate::provider::instrumented(&settings, metrics.clone(), audit.clone()).await?;
        let mut state = recover(&*store)?;
        state.health.kms_key_problem =
            preflight_at_start(&*provider, &settings, state.active.is_some()).await?;
        let listener = server::bind(&settings.socket_path, settings.access.socket_group).await?;
        let shared: SharedState = Arc::new(RwLock::new(state));
        let current = Current::shared(settings.clone(), provider);
        let rotator = || Rotator {
            store: store.clone(),
            current: current.clone(),
            metrics: metrics.clone(),
            audit: Some(audit.clone()),
        };
        let canary = Arc::new(Canary::new(rotator()));
        let rewrapper = Arc::new(Rewrapper::new(rotator()));
        let (engine, rotation) = Engine::new(rotator(), shared.clone());
        let reloader = Arc::new(Reloader::new(
            config_path,
            current.clone(),
            shared.clone(),
            rotation.clone(),
            store.clone(),
            metrics.clone(),
            audit.clone(),
        ));
        let unwrapper = Arc::new(crate::unwrap::Unwrapper::new(
            store.clone(),
            current.clone(),
        ));
        let app = AppState {
            store,
            engine: shared,
            rotation,
            current,
            reloader,
            metrics,
            canary,
            rewrapper,
            unwrapper,
            audit,
        };
        Ok(Daemon {
            settings,
            listener,
            app,
            engine,
        })
    }

    /// The socket the API listens on.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.settings.socket_path
    }

    /// Serves until SIGTERM or SIGINT, then drains and returns.
    pub async fn run(self) -> Result<(), StartError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
        let usr1 = signal(SignalKind::user_defined1()).map_err(StartError::Signals)?;
        let hup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;

        let signals = tokio::spawn(change_key_now_on_usr1(usr1, self.app.rotation.clone()));
        let reloads = tokio::spawn(reload_on_hup(hup, self.app.reloader.clone()));
        let systemd = tokio::spawn(tell_systemd(self.engine.subscribe()));
        let canary = {
            let c = self.app.canary.clone();
            tokio::spawn(async move { c.run_periodically().await })
        };
        let watchdog = tokio::spawn(watchdog(self.app.store.clone(), self.engine.subscribe()));
        let engine = tokio::spawn(self.engine.run(stop_rx.clone()));
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            let _ = stop_tx.send(true);
        });

        tracing::info!(socket = %self.settings.socket_path.display(), "kekd is serving");
        let mut stop = stop_rx.clone();
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let unwrapper = self.app.unwrapper.clone();
        let served = server::serve(self.listener, router(self.app), shutdown).await;
        notify(&[sd_notify::NotifyState::Stopping]);
        // The API has drained; now let an in-flight rotation finish.
        let _ = engine.await;
        signals.abort();
        systemd.abort();
        watchdog.abort();
        canary.abort();
        reloads.abort();
        let _ = std::fs::remove_file(&self.settings.socket_path);
        unwrapper.clear(); // decrypted private keys are freed (and cleansed) now
        tracing::info!("kekd stopped");
        served.map_err(|source| {
            StartError::Bind(BindError::Io {
                path: self.settings.socket_path.clone(),
                source,
            })
        })
    }
}

/// Preflight at start (DESIGN.md item 8). A key that is definitely unusable
/// (wrong spec or usage, disabled, pending deletion, wrong region, denied,
/// missing) stops the start only when there is no active key pair to serve;
/// with one, kekd serves it and the failure shows up in status through the
/// failing rotations. KMS being unreachable never stops the start.
/// Returns the problem to show in status when kekd starts anyway.
async fn preflight_at_start(
    provider: &dyn KeyProvider,
    settings: &Settings,
    has_active: bool,
) -> Result<Option<String>, PreflightError> {
    match kms_check::preflight(provider, settings).await {
        Ok(d) => {
            tracing::info!(kms_key = %d.arn, "preflight passed: {} {} {}", d.key_spec, d.key_usage, d.key_state);
            Ok(None)
        }
        Err(e) if e.is_transient() || has_active => {
            tracing::warn!(error = %e, "preflight failed; serving the stored active key pair (if any) and retrying rotations");
            Ok(Some(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// SIGUSR1 = Change Key Now. Signals that arrive while a request is queued or
/// a rotation runs are folded into it.
async fn change_key_now_on_usr1(mut usr1: tokio::signal::unix::Signal, rotation: RotationHandle) {
    while usr1.recv().await.is_some() {
        if rotation.request(Reason::ChangeKeyNow) {
            tracing::info!("SIGUSR1: Change Key Now requested");
        } else {
            tracing::debug!("SIGUSR1: folded into a queued rotation");
        }
    }
}

/// SIGHUP = reload, told to systemd as RELOADING=1 … READY=1.
async fn reload_on_hup(mut hup: tokio::signal::unix::Signal, reloader: Arc<Reloader>) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        let usec = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = i128::from(usec.tv_sec) * 1_000_000 + i128::from(usec.tv_nsec) / 1_000;
        notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::MonotonicUsec(usec),
        ]);
        let out = reloader.reload().await;
        let status = format!("reload {}: {}", out.outcome, out.message);
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
    }
}

/// READY=1 once a key pair is active and the socket listens (the socket is
/// bound before `run`), then STATUS= on every change of the active key.
async fn tell_systemd(mut active: watch::Receiver<Option<String>>) {
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
        if active.changed().await.is_err() {
            return;
        }
    }
}

/// WATCHDOG=1 at half the interval systemd asks for (`WatchdogSec=`), but
/// only while a real health check passes: the store answers a read within
/// the interval and the rotation engine is alive. A wedged daemon stops
/// pinging and systemd restarts it.
async fn watchdog(store: Arc<dyn KeyStore>, engine: watch::Receiver<Option<String>>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        let store = store.clone();
        let read = tokio::time::timeout(
            interval / 2,
            tokio::task::spawn_blocking(move || store.schedule()),
        )
        .await;
        let store_ok = matches!(read, Ok(Ok(Ok(_))));
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

/// sd_notify, never fatal: outside systemd it does nothing, and a failure is
/// logged (zincati's rule).
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// Reads the store after a (possibly unclean) stop: abandons key pairs left
/// `pending` by a crash (they were never served), reports corrupt records,
/// and loads the active key and schedule.
fn recover(store: &dyn KeyStore) -> Result<EngineState, StoreError> {
    for item in store.list()? {
        match item {
            Listed::Ok(r) if r.state == KeyState::Pending => {
                tracing::warn!(key_pair_id = %r.id, "key pair left pending by an earlier stop; retiring it unused");
                store.abandon(&r.id, crate::time::now())?;
            }
            Listed::Corrupt { id, problem } => {
                tracing::error!(record = %id, %problem, "stored record does not decode; skipped and kept");
            }
            Listed::Ok(_) => {}
        }
    }
    let active = match store.active() {
        Ok(a) => a,
        Err(StoreError::Corrupt { id, problem }) => {
            tracing::error!(record = %id, %problem, "the active record does not decode; a new key pair will be made");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(EngineState {
        active: active.map(Arc::new),
        schedule: store.schedule()?,
        health: Default::default(),
    })
}

/// No core dumps and no same-user ptrace: this process holds decrypted keys.
fn disable_core_dumps() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not disable core dumps (PR_SET_DUMPABLE)");
    }
}
