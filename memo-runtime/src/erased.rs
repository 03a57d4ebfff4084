//! What code compiled once does to values whose types it does not know: compare, clone, lend
//! and move them, by one plain function per type ([`TypeOps`]) called through a pointer (their
//! drop is their drop glue, [`drop_at`]). One function rather than one per operation, as each
//! adds its own symbol, unwind entry and pointer to a binary for each key and value type; and a
//! key type shared by many caches compiles once.

/// What an [`TypeOps`] function does to the `T`s at its two places `a` and `b`.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    /// Whether the `T`s at `a` and `b` are equal: non-null if so. A value's `TypeOps`
    /// ([`value_ops`]) answers null: values are never compared.
    Eq,
    /// Clones the `T` at `a` into the `Option<T>` at `b`, which holds `None` (nothing is
    /// dropped).
    CloneInto,
    /// Clones the `T` at `a` into memory for a `T` at `b`, uninitialised (nothing is dropped).
    CloneTo,
    /// The `T` in the `Option<T>` at `a`; null for `None`.
    SomeIn,
    /// Moves the `T` out of the `Option<T>` at `a`, which then holds `None`, into memory for a
    /// `T` at `b`: `b`, or null for `None` (nothing moved). `a` is written: borrowed mutably.
    TakeTo,
}

/// The [`Op`]s of one type: [`key_ops`] or [`value_ops`].
///
/// # Safety
///
/// `a` and `b` point to what the [`Op`] names, of the function's type, borrowed while the call
/// lasts, mutably where the op writes (`b` unused by [`Op::SomeIn`]; `a` written by
/// [`Op::TakeTo`]).
pub(crate) type TypeOps = unsafe fn(Op, *const (), *mut ()) -> *const ();

/// The [`TypeOps`] of a key type, which compares.
///
/// # Safety
///
/// As for [`TypeOps`].
#[allow(
    clippy::ptr_as_ptr,
    reason = "a cast instantiates no function per type in a debug build"
)]
pub(crate) unsafe fn key_ops<T: Clone + Eq>(op: Op, a: *const (), b: *mut ()) -> *const () {
    match op {
        // SAFETY: the caller's promise.
        Op::Eq if unsafe { *(a as *const T) == *(b as *const T) } => a,
        Op::Eq => std::ptr::null(),
        // SAFETY: the caller's promise.
        _ => unsafe { value_ops::<T>(op, a, b) },
    }
}

/// The [`TypeOps`] of a value type, which need not compare.
///
/// # Safety
///
/// As for [`TypeOps`].
#[allow(
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    reason = "casts: `cast` and `from_ref` would be compiled for each type in a debug build"
)]
pub(crate) unsafe fn value_ops<T: Clone>(op: Op, a: *const (), b: *mut ()) -> *const () {
    match op {
        Op::Eq => std::ptr::null(),
        // SAFETY: the caller's promise.
        Op::CloneInto => unsafe {
            (b as *mut Option<T>).write(Some((*(a as *const T)).clone()));
            b
        },
        // SAFETY: the caller's promise.
        Op::CloneTo => unsafe {
            std::ptr::write(b as *mut T, (*(a as *const T)).clone());
            b
        },
        // SAFETY: the caller's promise.
        Op::SomeIn => match unsafe { &*(a as *const Option<T>) } {
            Some(held) => held as *const T as *const (),
            None => std::ptr::null(),
        },
        // SAFETY: the caller's promise.
        Op::TakeTo => match unsafe { (*(a as *mut Option<T>)).take() } {
            // SAFETY: the caller's promise.
            Some(taken) => unsafe {
                (b as *mut T).write(taken);
                b
            },
            None => std::ptr::null(),
        },
    }
}

/// Whether the `T`s at `a` and `b` are equal, by `T`'s [`key_ops`].
///
/// # Safety
///
/// `ops` is `key_ops::<T>`; `a` and `b` point to `T`s, borrowed while the call lasts.
pub(crate) unsafe fn eq(ops: TypeOps, a: *const (), b: *const ()) -> bool {
    // SAFETY: the caller's promise.
    !unsafe { ops(Op::Eq, a, b.cast_mut()) }.is_null()
}

/// Clones the `T` at `value` into the `Option<T>` at `out`, which holds `None`.
///
/// # Safety
///
/// `ops` is `T`'s; `value` points to a `T` and `out` to an `Option<T>` that holds `None`, both
/// borrowed while the call lasts.
pub(crate) unsafe fn clone_into(ops: TypeOps, value: *const (), out: *mut ()) {
    // SAFETY: the caller's promise.
    unsafe { ops(Op::CloneInto, value, out) };
}

/// Clones the `T` at `value` into memory for a `T` at `out`, which holds none.
///
/// # Safety
///
/// `ops` is `T`'s; `value` points to a `T`, borrowed while the call lasts, and `out` to memory
/// for a `T`.
pub(crate) unsafe fn clone_to(ops: TypeOps, value: *const (), out: *mut ()) {
    // SAFETY: the caller's promise.
    unsafe { ops(Op::CloneTo, value, out) };
}

/// The `T` in the `Option<T>` at `option`; null for `None`.
///
/// # Safety
///
/// `ops` is `T`'s; `option` points to an `Option<T>`, borrowed while the call lasts.
pub(crate) unsafe fn some_in(ops: TypeOps, option: *const ()) -> *const () {
    // SAFETY: the caller's promise.
    unsafe { ops(Op::SomeIn, option, std::ptr::null_mut()) }
}

/// Moves the `T` out of the `Option<T>` at `option` (which then holds `None`) into memory for a
/// `T` at `out`; `false` if it held `None`.
///
/// # Safety
///
/// `ops` is `T`'s; `option` points to an `Option<T>`, borrowed mutably while the call lasts, and
/// `out` to memory for a `T`, which holds none.
pub(crate) unsafe fn take_to(ops: TypeOps, option: *mut (), out: *mut ()) -> bool {
    // SAFETY: the caller's promise.
    !unsafe { ops(Op::TakeTo, option, out) }.is_null()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each [`Op`] of a key's and a value's [`TypeOps`] does what it names, on a type that owns
    /// memory (a clone that shared it would be freed twice).
    #[test]
    fn each_op_does_what_it_names() {
        let key: TypeOps = key_ops::<String>;
        let value: TypeOps = value_ops::<String>;
        let (a, b, c) = (
            String::from("one"),
            String::from("one"),
            String::from("two"),
        );
        let at = |s: &String| std::ptr::from_ref(s).cast::<()>();
        // SAFETY: each pointer is to a `String`, as each op asks, borrowed meanwhile.
        unsafe {
            assert!(eq(key, at(&a), at(&b)));
            assert!(!eq(key, at(&a), at(&c)));
            assert!(!eq(value, at(&a), at(&b)), "values are never compared");
        }
        for ops in [key, value] {
            let mut out: Option<String> = None;
            let mut to = std::mem::MaybeUninit::<String>::uninit();
            // SAFETY: `out` is an `Option<String>` holding `None`, `to` memory for a `String`.
            let to = unsafe {
                clone_into(ops, at(&c), std::ptr::from_mut(&mut out).cast());
                clone_to(ops, at(&c), to.as_mut_ptr().cast());
                to.assume_init()
            };
            assert_eq!((out.as_deref(), to.as_str()), (Some("two"), "two"));
            // SAFETY: `out` and `none` are `Option<String>`s.
            unsafe {
                let inner = some_in(ops, std::ptr::from_ref(&out).cast());
                assert_eq!(inner, std::ptr::from_ref(out.as_ref().unwrap()).cast());
                let none: Option<String> = None;
                assert!(some_in(ops, std::ptr::from_ref(&none).cast()).is_null());
            }
            let mut taken = std::mem::MaybeUninit::<String>::uninit();
            let option = std::ptr::from_mut(&mut out).cast();
            // SAFETY: `option` is an `Option<String>`, `taken` memory for a `String`.
            unsafe {
                assert!(take_to(ops, option, taken.as_mut_ptr().cast()));
                assert!(
                    !take_to(ops, option, taken.as_mut_ptr().cast()),
                    "nothing left"
                );
                assert_eq!(taken.assume_init(), "two");
            }
            assert_eq!(out, None);
        }
    }
}
