//! A new cadence taking effect: the next rotation is computed again from
//! now, stored, and the engine woken to sleep until it instead. On a
//! reload, and at a start whose file changed the cadence while kekd was
//! stopped — the stored schedule was made for the old one.

use super::{RotationHandle, SharedState};
use crate::config::Settings;
use crate::domain::Schedule;
use crate::store::{KeyStore, StoreError};
use crate::time;

/// Schedules the next rotation under `settings`' cadence, from now.
pub(crate) async fn reschedule(
    state: &SharedState,
    store: &dyn KeyStore,
    rotation: &RotationHandle,
    settings: &Settings,
) -> Result<(), StoreError> {
    let next = settings.next_rotation_after(time::now());
    let schedule = state.update(|st| {
        st.schedule = Schedule {
            last_rotation_at: st.schedule.last_rotation_at,
            next_rotation_at: next,
        };
        st.schedule.clone()
    });
    store.set_schedule(&schedule).await?;
    rotation.reschedule();
    Ok(())
}
