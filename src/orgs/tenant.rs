//! One organization at run time: its own store, settings and provider,
//! rotation engine, canary, KMS key watch, rewrap and unwrap — nothing of
//! it shared with another organization but the daemon's audit trail,
//! metrics and task rule. One organization's slow or failing KMS key
//! therefore never waits on, or makes wait, another's.

use super::Ctx;
use crate::audit::Audit;
use crate::canary::Canary;
use crate::config::Settings;
use crate::current::SharedCurrent;
use crate::domain::{KeyProblem, KeyState, NoticedBy, OrgRecord, OrgState};
use crate::key_watch::KeyWatch;
use crate::kms_check::{self, PreflightError};
use crate::provider::budget::{with_priority, Priority};
use crate::provider::KeyProvider;
use crate::rewrap::Rewrapper;
use crate::rotation::{
    Engine, EngineParts, EngineState, Pruner, RotationHandle, Rotator, SharedState,
};
use crate::store::{KeyStore, Listed, StoreError};
use crate::unwrap::Unwrapper;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The window over which the start-up preflights of organizations that
/// already serve are spread: 10,000 of them at the default DescribeKey
/// budget (20/s) need about 8 minutes.
const START_CHECKS_WITHIN: std::time::Duration = std::time::Duration::from_secs(600);

/// What every operation on one organization's key pairs is made of.
#[derive(Clone)]
pub(crate) struct Parts {
    /// The organization id.
    pub(crate) id: Arc<str>,
    /// The organization as stored when these parts were made.
    pub(crate) record: Arc<OrgRecord>,
    /// Its key pairs.
    pub(crate) store: Arc<dyn KeyStore>,
    /// Its engine's state: active key pair and health.
    pub(crate) engine: SharedState,
    /// Asks its engine to rotate.
    pub(crate) rotation: RotationHandle,
    /// Its settings and provider in force.
    pub(crate) current: SharedCurrent,
    /// Re-checks its KMS key while status names a problem with it.
    pub(crate) key_watch: KeyWatch,
    /// Its decryptability canary.
    pub(crate) canary: Arc<Canary>,
    /// Its rewrap.
    pub(crate) rewrapper: Arc<Rewrapper>,
    /// Its content-key unwrap.
    pub(crate) unwrapper: Arc<Unwrapper>,
    /// The daemon's trail, its records naming this organization.
    pub(crate) audit: Arc<Audit>,
}

/// When the KMS key is checked as a tenant is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preflight {
    /// At start, for the organization the file declares: a key that is
    /// definitely unusable stops the start when there is no active key
    /// pair to serve.
    Fatal,
    /// At start, for any other organization: a problem is shown in its
    /// status, never stops the daemon (one customer's revoked key must not
    /// take the others down).
    Reported,
    /// Already done (an organization being added passed the Test).
    Done,
}

/// Why a tenant could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider cannot be made.
    #[error(transparent)]
    RootKey(#[from] crate::provider::local::RootKeyError),
    /// The KMS key is unusable and there is no active key pair to serve.
    #[error("preflight of the KMS key failed: {0}")]
    Preflight(#[from] PreflightError),
}

/// One organization, running (or, removed, only readable).
pub(crate) struct Tenant<X> {
    /// What its operations are made of.
    pub(crate) parts: Parts,
    /// What the API made of the parts.
    pub(crate) api: X,
    /// Its engine until its tasks start (none for a removed organization).
    engine: Mutex<Option<Engine>>,
    /// Follows its active key pair id.
    pub(crate) active: watch::Receiver<Option<String>>,
    /// Stops its tasks alone (a child of the daemon's stop).
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<X> Tenant<X> {
    /// Whether the organization is removed (history kept, nothing served).
    pub(crate) fn is_removed(&self) -> bool {
        self.parts.record.state == OrgState::Removed
    }

    /// Starts its engine, canary and key watch (once; a removed
    /// organization has none).
    pub(crate) fn start(&self, ctx: &Ctx) {
        let Some(engine) = crate::sync::lock(&self.engine).take() else {
            return;
        };
        let spawner = &ctx.spawner;
        let mut tasks = crate::sync::lock(&self.tasks);
        let stop = self.stop.clone();
        let (canary, watch) = (self.parts.canary.clone(), self.parts.key_watch.clone());
        let s = stop.clone();
        tasks.push(spawner.spawn("kms-key-watch", stop.clone(), watch.run(s)));
        let s = stop.clone();
        tasks.push(spawner.spawn("canary", stop.clone(), async move {
            canary.run_periodically(s).await
        }));
        tasks.push(spawner.spawn("rotation-engine", stop.clone(), engine.run(stop)));
    }

    /// Stops its tasks and waits for them (an in-flight rotation finishes
    /// first), until `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *crate::sync::lock(&self.tasks));
        for t in tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                tracing::warn!(organization = %self.parts.id, "a task of the organization did not stop in time; abandoning it");
            }
        }
        self.parts.unwrapper.clear();
    }

    /// Takes its engine out (to wait for its first rotation before it
    /// starts).
    pub(crate) fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> Option<T> {
        crate::sync::lock(&self.engine).as_mut().map(f)
    }
}

/// Makes the tenant of `record` with `settings` (its own, already
/// validated). Nothing runs until [`Tenant::start`].
pub(crate) async fn make<X>(
    ctx: &Ctx,
    record: OrgRecord,
    settings: Arc<Settings>,
    preflight: Preflight,
    api: impl FnOnce(&Parts) -> X,
) -> Result<Tenant<X>, TenantError> {
    let id: Arc<str> = record.id().into();
    let store = ctx.registry.keys(&id).await?;
    let audit = ctx.audit.for_org(&id);
    let provider =
        crate::provider::instrumented(&settings, ctx.metrics.clone(), audit.clone(), &ctx.budget)
            .await?;
    let mut state = recover(&*store).await?;
    // An organization with a proven active key pair serves without asking
    // KMS first: its start-up preflight is the key watch's, at its own place
    // in the first minutes, so 10,000 organizations start at once and their
    // preflights do not arrive at KMS together.
    let deferred = preflight == Preflight::Reported && state.active.is_some();
    if preflight != Preflight::Done && !deferred {
        let fatal = preflight == Preflight::Fatal && state.active.is_none();
        state.health.kms_key_problem = with_priority(
            Priority::Background,
            check_key(&*provider, &settings, &id, fatal),
        )
        .await?;
    }
    let removed = record.state == OrgState::Removed;
    let engine_state = SharedState::new(state);
    let current = SharedCurrent::new(settings, provider);
    let (engine, rotation) = Engine::new(EngineParts {
        rotator: Rotator::new(store.clone(), current.clone()).with_state(engine_state.clone()),
        pruner: Pruner::new(store.clone(), current.clone(), Some(audit.clone())),
        state: engine_state.clone(),
        current: current.clone(),
        metrics: ctx.metrics.clone(),
        audit: Some(audit.clone()),
        peers: ctx.peers.clone(),
    });
    let key_watch = KeyWatch::new(engine_state.clone(), current.clone())
        .check_at_start(
            deferred.then(|| crate::spread::offset(&id, "preflight", START_CHECKS_WITHIN)),
        )
        .with_cache(ctx.key_cache.clone(), id.clone());
    let parts = Parts {
        id: id.clone(),
        record: Arc::new(record),
        canary: Arc::new(
            Canary::new(store.clone(), current.clone(), ctx.metrics.clone())
                .with_key_watch(key_watch.clone()),
        ),
        rewrapper: Arc::new(Rewrapper::new(store.clone(), current.clone())),
        unwrapper: Arc::new(
            Unwrapper::new(store.clone(), current.clone())
                .with_cache(ctx.key_cache.clone())
                .with_key_watch(key_watch.clone()),
        ),
        key_watch,
        store,
        engine: engine_state,
        rotation,
        current,
        audit,
    };
    let active = engine.subscribe();
    Ok(Tenant {
        api: api(&parts),
        parts,
        engine: Mutex::new((!removed).then_some(engine)),
        active,
        stop: ctx.spawner.stop().child_token(),
        tasks: Mutex::default(),
    })
}

/// Preflight as a tenant is made: passes, or returns the problem to show
/// in status; fails only when `fatal` and the key is definitely unusable.
async fn check_key(
    provider: &dyn KeyProvider,
    settings: &Settings,
    org: &str,
    fatal: bool,
) -> Result<Option<KeyProblem>, PreflightError> {
    match kms_check::preflight(provider, settings).await {
        Ok(d) => {
            tracing::info!(organization = org, kms_key = %d.arn, "preflight passed: {}", d.summary());
            Ok(None)
        }
        Err(e) if fatal && !e.is_unavailable() => Err(e),
        Err(e) => {
            tracing::warn!(organization = org, error = %e, "preflight failed; serving the stored active key pair (if any) and retrying rotations");
            Ok(e.problem(NoticedBy::Preflight))
        }
    }
}

/// Reads the store after a (possibly unclean) stop: abandons key pairs left
/// `pending` by a crash (they were never served) and loads the active key
/// and schedule. Only a store that counts pending key pairs is scanned, so a
/// clean start costs the same whatever the history.
pub(crate) async fn recover(store: &dyn KeyStore) -> Result<EngineState, StoreError> {
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
