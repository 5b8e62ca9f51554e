//! Wiring: start-up, signals, systemd, graceful shutdown.
//!
//! [`Daemon::start`] does everything that can fail at start (state dir,
//! store, provider, socket) so the binary can report it and exit non-zero;
//! [`Daemon::run`] then serves until SIGTERM/SIGINT. Shutdown, as in
//! mini-redis: the API stops accepting and drains its in-flight requests,
//! then every background task is told to stop and waited for (an in-flight
//! rotation finishes first) — no `process::exit` anywhere.
//!
//! - `tasks.rs`: the background tasks and their bounded drain.
//! - `signals.rs`: SIGUSR1 (Change Key Now) and SIGHUP (reload).
//! - `systemd.rs`: READY/STATUS/STOPPING and the watchdog.

mod signals;
mod systemd;
mod tasks;

use crate::api::routes::router;
use crate::api::server;
pub use crate::api::server::BindError;
use crate::api::state::{AppState, Services};
use crate::audit::Audit;
use crate::canary::Canary;
use crate::config::Settings;
use crate::current::SharedCurrent;
use crate::domain::KeyState;
use crate::kms_check::{self, PreflightError};
use crate::metrics::Metrics;
use crate::provider::local::RootKeyError;
use crate::provider::KeyProvider;
use crate::reload::{ReloadParts, Reloader};
use crate::rewrap::Rewrapper;
use crate::rotation::{Engine, EngineParts, EngineState, Pruner, Rotator, SharedState};
use crate::store::{KeyStore, Listed, StoreError};
use crate::unwrap::Unwrapper;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for background tasks after the API drained.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The state directory cannot be created or secured.
    #[error("state directory {path}: cannot {operation}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state directory is not usable by this process.
    #[error("state directory: {0}")]
    StateDirUnusable(String),
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The local root key cannot be used.
    #[error(transparent)]
    RootKey(#[from] RootKeyError),
    /// The socket cannot be bound, or serving it failed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The KMS key is unusable and there is no active key pair to serve.
    #[error("preflight of the KMS key failed: {0}")]
    Preflight(#[from] PreflightError),
    /// A FIPS build whose cryptographic module is not in FIPS mode.
    #[error(transparent)]
    Fips(#[from] crate::fips::NotFipsMode),
    /// The metrics listener cannot be bound.
    #[error("[metrics] listen {addr}: {source}")]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers cannot be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// A background task ended on its own (a bug); kekd stopped so that
    /// systemd restarts it.
    #[error("the {0} task stopped unexpectedly (see the log); exiting so kekd is restarted")]
    TaskFailed(&'static str),
}

/// A started daemon: store open, socket bound, not yet serving.
pub struct Daemon {
    settings: Arc<Settings>,
    metrics_listener: Option<tokio::net::TcpListener>,
    config_path: Option<std::path::PathBuf>,
    listener: UnixListener,
    /// The bound socket's device and inode: only that file is removed at
    /// shutdown.
    socket_identity: Option<(u64, u64)>,
    /// Re-checks the KMS key while status names a problem with it.
    key_watch: crate::key_watch::KeyWatch,
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
        crate::fips::check()?;
        tracing::info!(
            version = crate::fips::VERSION,
            cryptography = crate::fips::describe(),
            "kekd starting"
        );
        for w in settings.warnings() {
            tracing::warn!("configuration: {w}");
        }
        let settings = Arc::new(settings);
        let dir = &settings.state_dir;
        let dir_err = |operation| {
            move |source| StartError::StateDir {
                path: dir.display().to_string(),
                operation,
                source,
            }
        };
        crate::config::state_dir_usable(dir).map_err(StartError::StateDirUnusable)?;
        std::fs::create_dir_all(dir).map_err(dir_err("create it"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(dir_err("make it private (chmod 0700)"))?;

        let store = crate::store::open(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(Audit::open_async(&settings.audit_path).await?);
        let provider =
            crate::provider::instrumented(&settings, metrics.clone(), audit.clone()).await?;
        let mut state = recover(&*store).await?;
        state.health.kms_key_problem =
            preflight_at_start(&*provider, &settings, state.active.is_some()).await?;
        let listener = server::bind(&settings.socket_path, settings.access.socket_group).await?;
        let socket_identity = server::identity(&settings.socket_path);
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::MetricsListen { addr, source })?,
            ),
            None => None,
        };
        let engine_state = SharedState::new(state);
        let current = SharedCurrent::new(settings.clone(), provider);
        let (engine, rotation) = Engine::new(EngineParts {
            rotator: Rotator::new(store.clone(), current.clone()),
            pruner: Pruner::new(store.clone(), current.clone(), Some(audit.clone())),
            state: engine_state.clone(),
            current: current.clone(),
            metrics: metrics.clone(),
            audit: Some(audit.clone()),
        });
        let rewrapper = Arc::new(Rewrapper::new(store.clone(), current.clone()));
        let reloader = Arc::new(Reloader::new(ReloadParts {
            rewrapper: rewrapper.clone(),
            config_path: config_path.clone(),
            current: current.clone(),
            engine: engine_state.clone(),
            rotation: rotation.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
        }));
        let key_watch = crate::key_watch::KeyWatch::new(engine_state.clone(), current.clone());
        let app = AppState::new(Services {
            refusals: Default::default(),
            corrupt: Default::default(),
            jwks: Default::default(),
            status: Default::default(),
            public_key: Default::default(),
            newest_page: Default::default(),
            canary: Arc::new(
                Canary::new(store.clone(), current.clone(), metrics.clone())
                    .with_key_watch(key_watch.clone()),
            ),
            rewrapper,
            unwrapper: Arc::new(
                Unwrapper::new(store.clone(), current.clone()).with_key_watch(key_watch.clone()),
            ),
            store,
            engine: engine_state,
            rotation,
            current,
            reloader,
            metrics,
            audit,
        });
        Ok(Daemon {
            settings,
            metrics_listener,
            config_path,
            listener,
            socket_identity,
            key_watch,
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
        let stop = CancellationToken::new();
        let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
        let usr1 = signal(SignalKind::user_defined1()).map_err(StartError::Signals)?;
        let hup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
        let xfsz = signal(SignalKind::from_raw(libc::SIGXFSZ)).map_err(StartError::Signals)?;

        let app = &self.app;
        let mut tasks = tasks::Tasks::new(stop.clone());
        let rotation = app.rotation.clone();
        tasks.spawn("change-key-now", |s| {
            signals::change_key_now_on_usr1(usr1, rotation, s)
        });
        let reloader = app.reloader.clone();
        tasks.spawn("reload", |s| signals::reload_on_hup(hup, reloader, s));
        tasks.spawn("file-size-limit", |s| signals::log_file_size_limit(xfsz, s));
        let active = self.engine.subscribe();
        tasks.spawn("systemd", |s| systemd::tell_systemd(active, s));
        let (store, active) = (app.store.clone(), self.engine.subscribe());
        tasks.spawn("watchdog", |s| systemd::watchdog(store, active, s));
        let key_watch = self.key_watch.clone();
        tasks.spawn("kms-key-watch", |s| key_watch.run(s));
        let canary = app.canary.clone();
        tasks.spawn(
            "canary",
            |s| async move { canary.run_periodically(s).await },
        );
        let (refusals, audit) = (app.refusals.clone(), app.audit.clone());
        tasks.spawn("refusal-summaries", |s| {
            crate::api::refusals::summarize_refusals(refusals, audit, s)
        });
        if let Some(l) = self.metrics_listener {
            let router = crate::api::routes::metrics_router(app.clone());
            tracing::info!(addr = ?l.local_addr().ok(), "serving /metrics over TCP");
            tasks.spawn("metrics-listener", |s| async move {
                let served = axum::serve(l, router)
                    .with_graceful_shutdown(async move { s.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        // The engine goes last: the others stop at once, it may be finishing
        // a rotation that an API caller waits for.
        let engine = self.engine;
        tasks.spawn("rotation-engine", |s| engine.run(s));

        let stop_on_signal = stop.clone();
        let signal_task = tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                _ = stop_on_signal.cancelled() => {}
            }
            stop_on_signal.cancel();
        });

        tracing::info!(
            socket = %self.settings.socket_path.display(),
            config = %self
                .config_path
                .as_deref()
                .map_or_else(|| "none (--dev)".into(), |p| p.display().to_string()),
            "kekd is serving"
        );
        // Records that do not decode are found by one scan of the whole
        // store, beside the API rather than before it.
        tokio::spawn(find_corrupt_records(app.store.clone(), app.corrupt.clone()));
        let unwrapper = app.unwrapper.clone();
        let serving = serving(&self.settings.api);
        server::serve(
            self.listener,
            router(self.app),
            serving,
            stop.clone(),
            DRAIN_BOUND,
        )
        .await;
        stop.cancel();
        let _ = signal_task.await;
        systemd::notify(&[sd_notify::NotifyState::Stopping]);
        // The API has drained; every task stops, and an in-flight rotation
        // finishes.
        let failed = tasks.drain(DRAIN_BOUND).await;
        server::remove_own(&self.settings.socket_path, self.socket_identity);
        unwrapper.clear(); // decrypted private keys are freed (and cleansed) now
        tracing::info!("kekd stopped");
        match failed {
            Some(task) => Err(StartError::TaskFailed(task)),
            None => Ok(()),
        }
    }
}

/// The API's connection rules: the configured caps, kept below the
/// descriptor limit with room for the store, the audit log and KMS.
fn serving(api: &crate::config::ApiSettings) -> server::Serving {
    const RESERVED_FDS: u64 = 64;
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let room = nofile.saturating_sub(RESERVED_FDS).max(8);
    let total = api
        .max_connections
        .min(usize::try_from(room).unwrap_or(usize::MAX));
    if total < api.max_connections {
        tracing::warn!(
            nofile,
            max_connections = total,
            "the descriptor limit (LimitNOFILE) lowers api.max_connections"
        );
    }
    server::Serving {
        header_timeout: api.header_timeout,
        limits: crate::api::connections::Limits {
            total,
            per_uid: api.max_connections_per_uid.min(total),
        },
    }
}

/// Preflight at start. A key that is definitely unusable (wrong spec or
/// usage, disabled, pending deletion, wrong region, denied, missing) stops
/// the start only when there is no active key pair to serve; with one, kekd
/// serves it and the failure shows up in status through the failing
/// rotations. KMS being unavailable never stops the start. Returns the
/// problem to show in status when kekd starts anyway.
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
        Err(e) if e.is_unavailable() || has_active => {
            tracing::warn!(error = %e, "preflight failed; serving the stored active key pair (if any) and retrying rotations");
            Ok(Some(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Reads the store after a (possibly unclean) stop: abandons key pairs left
/// `pending` by a crash (they were never served) and loads the active key
/// and schedule. Only a store that counts pending key pairs is scanned, so a
/// clean start costs the same whatever the history.
async fn recover(store: &dyn KeyStore) -> Result<EngineState, StoreError> {
    // In a fleet, a pending key pair may be another instance's rotation in
    // progress: only the lease holder supersedes what a holder left behind.
    let pending = if store.fleet().is_some() {
        0
    } else {
        store
            .summary()
            .await?
            .by_state
            .get(&KeyState::Pending)
            .copied()
            .unwrap_or(0)
    };
    if pending > 0 {
        for item in store.list().await? {
            if let Listed::Ok(r) = item {
                if r.state == KeyState::Pending {
                    tracing::warn!(key_pair_id = %r.id, "key pair left pending by an earlier stop; marking it superseded");
                    store.abandon(&r.id, crate::time::now()).await?;
                }
            }
        }
    }
    let active = match store.active().await {
        Ok(a) => a,
        Err(StoreError::Corrupt { id, problem }) => {
            tracing::error!(record = %id, %problem, "the active record does not decode; a new key pair will be made");
            None
        }
        Err(e) => return Err(e),
    };
    // An announced key pair is the newest one created: one short page.
    let mut announced = None;
    for item in store.page(None, 4).await?.records {
        if let Listed::Ok(r) = item {
            if r.state == KeyState::Announced {
                announced = store.get(&r.id).await?.map(Arc::new);
                break;
            }
        }
    }
    Ok(EngineState {
        active: active.map(Arc::new),
        announced,
        schedule: store.schedule().await?,
        health: Default::default(),
        fleet: store.fleet().map(|f| crate::rotation::FleetHealth {
            location: f.location(),
            instance: f.instance().to_string(),
            last_refresh_at: Some(crate::time::now()),
            ..Default::default()
        }),
    })
}

/// Scans every stored record once and keeps those that do not decode for
/// status and history (I5: reported, skipped, never deleted).
async fn find_corrupt_records(
    store: Arc<dyn KeyStore>,
    corrupt: crate::api::state::CorruptRecords,
) {
    match store.corrupt_records().await {
        Ok(list) => {
            let found: Vec<_> = list
                .into_iter()
                .map(|(id, problem)| {
                    tracing::error!(record = %id, %problem, "stored record does not decode; skipped and kept");
                    crate::api::views::CorruptRecord { id, problem }
                })
                .collect();
            corrupt.set(found);
        }
        Err(e) => tracing::error!(error = %e, "cannot scan the store for corrupt records"),
    }
}

/// No core dumps and no same-user ptrace: this process holds decrypted keys.
fn disable_core_dumps() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not disable core dumps (PR_SET_DUMPABLE)");
    }
}
