//! One rule for poisoned locks: recover the data and go on.
//!
//! A thread that panics while holding one of kekd's `std::sync::Mutex`es
//! leaves the value as it was between two statements; every guarded value
//! here (caches, heads, counters, the audit writer) is valid at every such
//! point, and a panic is already reported by the task that caught it. So a
//! poisoned lock is taken as it is, never turned into a second panic that
//! would take status or unwrap down with it.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering it if a panicking thread poisoned it.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes `l` for reading, recovering it if poisoned.
pub(crate) fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Takes `l` for writing, recovering it if poisoned.
pub(crate) fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
