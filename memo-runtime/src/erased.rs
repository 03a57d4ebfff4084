//! Plain functions over values without their types, one per type, for code compiled once to call
//! through a pointer: so a key type shared by many caches compiles each once.

/// Whether the `T`s at two places are equal ([`eq`]).
pub(crate) type EqAt = unsafe fn(*const (), *const ()) -> bool;

/// # Safety
///
/// `a` and `b` point to `T`s, borrowed while the call lasts.
#[allow(
    clippy::ptr_as_ptr,
    reason = "a cast instantiates no function per type in a debug build"
)]
pub(crate) unsafe fn eq<T: Eq>(a: *const (), b: *const ()) -> bool {
    // SAFETY: the caller's promise.
    unsafe { *(a as *const T) == *(b as *const T) }
}

/// Clones the `T` at a place into the `Option<T>` at another ([`clone_into`]).
pub(crate) type CloneInto = unsafe fn(*const (), *mut ());

/// # Safety
///
/// `value` points to a `T` and `out` to an `Option<T>` that holds `None` (nothing is dropped),
/// both borrowed while the call lasts.
#[allow(
    clippy::ptr_as_ptr,
    reason = "a cast instantiates no function per type in a debug build"
)]
pub(crate) unsafe fn clone_into<T: Clone>(value: *const (), out: *mut ()) {
    // SAFETY: the caller's promise.
    unsafe { (out as *mut Option<T>).write(Some((*(value as *const T)).clone())) }
}
