//! Wiring: start-up, signals, systemd, graceful shutdown.
//!
//! [`Daemon::start`] does everything that can fail at start (state dir,
//! store, provider, socket) so the binary can report it and exit non-zero;
//! [`Daemon::run`] then serves until SIGTERM/SIGINT. Shutdown, as in
//! mini-redis: the API stops accepting and drains its in-flight requests,
//! then every background task is told to stop and waited for (an in-flight
//! rotation finishes first) — no `process::exit` anywhere.
//!
//! - `signals.rs`: SIGUSR1 (Change Key Now) and SIGHUP (reload).
//! - `systemd.rs`: READY/STATUS/STOPPING and the watchdog.

mod signals;
mod systemd;

use crate::api::routes::router;
use crate::api::server;
pub use crate::api::server::BindError;
use crate::api::state::{AppState, Daemonwide, Hub, Services};
use crate::audit::Audit;
use crate::config::Settings;
use crate::kms_check::PreflightError;
use crate::metrics::Metrics;
use crate::orgs::{OrgError, Parts, TenantError};
use crate::provider::local::RootKeyError;
use crate::reload::{ReloadParts, Reloader};
use crate::store::{KeyStore, StoreError};
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
    /// The organizations in the store cannot be loaded.
    #[error("organizations: {0}")]
    Orgs(String),
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
    hub: Hub,
    /// Every background task, the organizations' included, stops on it.
    stop: CancellationToken,
    tasks: crate::tasks::Tasks,
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

        let registry = crate::store::open(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(Audit::open_async(&settings.audit_path).await?);
        let stop = CancellationToken::new();
        let tasks = crate::tasks::Tasks::new(stop.clone());
        let refusals: Arc<crate::api::refusals::Refusals> = Default::default();
        let budget = crate::provider::budget::Budget::new(settings.kms_budget);
        let ctx = crate::orgs::Ctx {
            registry,
            metrics: metrics.clone(),
            audit: audit.clone(),
            spawner: tasks.spawner(),
            budget: budget.clone(),
            peers: Default::default(),
            key_cache: Default::default(),
        };
        let api_metrics = metrics.clone();
        let orgs = crate::orgs::Orgs::open(ctx, settings.clone(), move |p: &Parts| {
            AppState::new(Services {
                org: p.record.clone(),
                corrupt: Default::default(),
                jwks: Default::default(),
                status: Default::default(),
                public_key: Default::default(),
                newest_page: Default::default(),
                canary: p.canary.clone(),
                rewrapper: p.rewrapper.clone(),
                unwrapper: p.unwrapper.clone(),
                store: p.store.clone(),
                engine: p.engine.clone(),
                rotation: p.rotation.clone(),
                current: p.current.clone(),
                metrics: api_metrics.clone(),
                audit: p.audit.clone(),
            })
        })
        .await
        .map_err(StartError::from_org)?;
        let orgs = Arc::new(orgs);
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
        let declared = orgs.declared();
        let p = &declared.parts;
        let reloader = Arc::new(Reloader::new(ReloadParts {
            rewrapper: p.rewrapper.clone(),
            config_path: config_path.clone(),
            current: p.current.clone(),
            engine: p.engine.clone(),
            rotation: p.rotation.clone(),
            store: p.store.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            budget: budget.clone(),
        }));
        let hub = Hub::new(Daemonwide {
            orgs,
            reloader,
            audit,
            refusals,
            budget,
            summary: Default::default(),
        });
        Ok(Daemon {
            settings,
            metrics_listener,
            config_path,
            listener,
            socket_identity,
            hub,
            stop,
            tasks,
        })
    }

    /// The socket the API listens on.
    pub fn socket_path(&self) -> &std::path::Path {
        &self.settings.socket_path
    }

    /// Serves until SIGTERM or SIGINT, then drains and returns.
    pub async fn run(self) -> Result<(), StartError> {
        let stop = self.stop.clone();
        let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
        let usr1 = signal(SignalKind::user_defined1()).map_err(StartError::Signals)?;
        let hup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
        let xfsz = signal(SignalKind::from_raw(libc::SIGXFSZ)).map_err(StartError::Signals)?;

        let hub = &self.hub;
        let mut tasks = self.tasks;
        let orgs = hub.orgs.clone();
        tasks.spawn("change-key-now", |s| {
            signals::change_key_now_on_usr1(usr1, orgs, s)
        });
        let (reloader, orgs) = (hub.reloader.clone(), hub.orgs.clone());
        tasks.spawn("reload", |s| signals::reload_on_hup(hup, reloader, orgs, s));
        tasks.spawn("file-size-limit", |s| signals::log_file_size_limit(xfsz, s));
        let declared = hub.orgs.declared();
        let active = declared.active.clone();
        tasks.spawn("systemd", |s| systemd::tell_systemd(active, s));
        let (store, active) = (declared.parts.store.clone(), declared.active.clone());
        tasks.spawn("watchdog", |s| systemd::watchdog(store, active, s));
        let (refusals, audit) = (hub.refusals.clone(), hub.audit.clone());
        tasks.spawn("refusal-summaries", |s| {
            crate::api::refusals::summarize_refusals(refusals, audit, s)
        });
        if let Some(l) = self.metrics_listener {
            let router = crate::api::routes::metrics_router(hub.clone());
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
        // Every organization's engine, canary and key watch.
        hub.orgs.start();
        // In a fleet, what another member adds, changes or removes is
        // served here within the refresh interval.
        if let crate::config::StoreSettings::DynamoDb(fleet) = &self.settings.store {
            let (orgs, every) = (hub.orgs.clone(), fleet.refresh_interval);
            tasks.spawn("organizations-refresh", move |s| orgs.follow(every, s));
        }

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
            organizations = hub.orgs.all().len(),
            "kekd is serving"
        );
        // Records that do not decode are found by one scan of each store,
        // beside the API rather than before it.
        for t in hub.orgs.all() {
            tokio::spawn(find_corrupt_records(
                t.parts.store.clone(),
                t.api.corrupt.clone(),
            ));
        }
        let serving = serving(&self.settings.api);
        let orgs = hub.orgs.clone();
        server::serve(
            self.listener,
            router(self.hub),
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
        orgs.stop(tokio::time::Instant::now() + DRAIN_BOUND).await;
        let failed = tasks.drain(DRAIN_BOUND).await;
        server::remove_own(&self.settings.socket_path, self.socket_identity);
        tracing::info!("kekd stopped");
        match failed {
            Some(task) => Err(StartError::TaskFailed(task)),
            None => Ok(()),
        }
    }
}

impl StartError {
    /// What loading the organizations failed with, as a start error (the
    /// store, root key and preflight failures keep their own variants and
    /// exit codes).
    fn from_org(e: OrgError) -> StartError {
        match e {
            OrgError::Store(e) | OrgError::Tenant(TenantError::Store(e)) => StartError::Store(e),
            OrgError::Tenant(TenantError::RootKey(e)) => StartError::RootKey(e),
            OrgError::Tenant(TenantError::Preflight(e)) => StartError::Preflight(e),
            other => StartError::Orgs(other.to_string()),
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
