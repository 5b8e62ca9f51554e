//! The configuration in force and the key provider built from it, swapped as
//! one value on reload, so an operation always sees a consistent pair (a
//! rotation never seals with a new provider under old settings).

use crate::config::Settings;
use crate::provider::KeyProvider;
use std::sync::{Arc, RwLock};

/// Settings and the provider made from them.
pub(crate) struct Current {
    /// Settings in force.
    pub(crate) settings: Arc<Settings>,
    /// The key provider for those settings.
    pub(crate) provider: Arc<dyn KeyProvider>,
}

/// A shared, swappable [`Current`]. Cheap to clone; reads take a snapshot.
#[derive(Clone)]
pub(crate) struct SharedCurrent(Arc<RwLock<Arc<Current>>>);

impl SharedCurrent {
    /// Shares a first configuration.
    pub(crate) fn new(settings: Arc<Settings>, provider: Arc<dyn KeyProvider>) -> SharedCurrent {
        SharedCurrent(Arc::new(RwLock::new(Arc::new(Current {
            settings,
            provider,
        }))))
    }

    /// A snapshot of what is in force now.
    pub(crate) fn get(&self) -> Arc<Current> {
        crate::sync::read(&self.0).clone()
    }

    /// The settings in force now.
    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.get().settings.clone()
    }

    /// Puts a new configuration in force.
    pub(crate) fn replace(&self, settings: Arc<Settings>, provider: Arc<dyn KeyProvider>) {
        *crate::sync::write(&self.0) = Arc::new(Current { settings, provider });
    }
}
