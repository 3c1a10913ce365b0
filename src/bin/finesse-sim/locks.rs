//! Locking a std mutex whose data are plain values: a poisoned lock is recovered, not a panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
