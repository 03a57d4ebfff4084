//! A process-wide switch that bypasses every cache: for debugging ("is the cache the bug?").
//!
//! Off by default. `MEMO_DISABLE=1` (or `true`) in the environment turns it on when the first
//! cache is created; [`disable`] and [`enable`] flip it at run time. While it is on, memoized
//! functions run their body on every call and touch no cache. Checking it costs a hit one load
//! of a line nobody writes.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Bypasses every cache from now on, as if no function were memoized.
///
/// # Examples
///
/// ```
/// memo::disable();
/// assert!(memo::is_disabled());
/// memo::enable();
/// assert!(!memo::is_disabled());
/// ```
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Uses the caches again (the default).
///
/// # Examples
///
/// ```
/// memo::disable();
/// memo::enable();
/// assert!(!memo::is_disabled());
/// ```
pub fn enable() {
    DISABLED.store(false, Ordering::Relaxed);
}

/// Whether caches are bypassed ([`disable`], or `MEMO_DISABLE=1`).
///
/// # Examples
///
/// ```
/// memo::enable();
/// assert!(!memo::is_disabled());
/// memo::disable();
/// assert!(memo::is_disabled());
/// ```
#[inline]
#[must_use]
pub fn is_disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

/// Reads `MEMO_DISABLE` once, when the first cache is created (or [`is_disabled`] would be
/// answered without it).
pub(crate) fn read_environment() {
    static READ: Once = Once::new();
    READ.call_once(|| {
        let set = std::env::var("MEMO_DISABLE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        if set {
            disable();
        }
    });
}
