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

/// Clones the `T` at a place into memory for a `T` at another, uninitialised ([`clone_to`]).
pub(crate) type CloneTo = unsafe fn(*const (), *mut ());

/// # Safety
///
/// `value` points to a `T`, borrowed while the call lasts, and `out` to memory for a `T`, which
/// holds none (nothing is dropped).
#[allow(
    clippy::ptr_as_ptr,
    reason = "a cast instantiates no function per type in a debug build"
)]
pub(crate) unsafe fn clone_to<T: Clone>(value: *const (), out: *mut ()) {
    // SAFETY: the caller's promise.
    unsafe { std::ptr::write(out as *mut T, (*(value as *const T)).clone()) }
}

/// Drops the `T` at a place ([`drop_at`]).
pub(crate) type DropAt = unsafe fn(*mut ());

/// `T`'s drop glue, `drop_in_place::<T>`, taking its pointer untyped: no function of its own,
/// as a thin pointer's type does not change how a function takes it (the ABI compatibility rules
/// of `fn` pointers, for pointers of the same metadata).
pub(crate) const fn drop_at<T>() -> DropAt {
    let drop: unsafe fn(*mut T) = std::ptr::drop_in_place::<T>;
    // SAFETY: `*mut T` (`T: Sized`) and `*mut ()` are ABI-compatible; callers pass a pointer to a
    // `T`, as `drop_in_place` requires.
    unsafe { std::mem::transmute::<unsafe fn(*mut T), DropAt>(drop) }
}
