//! Where a memoized function finds its cache.
//!
//! The expansion of `#[cached] fn f` reaches the cache from two places: `f`'s body and the
//! companion `f_cache()`. Inside an `impl` neither can name the other without knowing it is in an
//! `impl`, and a `static` there cannot name `Self`; so each holds a type-erased [`CacheCell`] and
//! both cells resolve, once, through a process-wide registry keyed by the function's unique id,
//! its instance and the cache's type. After that a lookup is one atomic load and a type-id
//! compare, both of the cell itself.
//!
//! A `static` in a method of a generic `impl` is one for all the impl's instances, yet each
//! instance's body may compute other values (`Length::<Feet>::label(3)` is not
//! `Length::<Meters>::label(3)`). The expansion hands the cell the *scope* of the call: the
//! `type_name` of a closure in the function, which names the function with the impl's type and
//! generic arguments resolved (`app::Length<app::Feet>::label::{{closure}}`). Each instance gets
//! a cache of its own, and the scope gives the function its identity for the stores outside
//! the process. `type_name` is not injective (two closures, or two same-named types of two
//! blocks, are written alike), so the body also claims its cache by the closure's `TypeId`.
//! A function with a receiver is in an `impl` or a trait, so its body and its companion both
//! name `Self`: both pass a type of `Self` and the function's own type parameters
//! ([`scope_self`]) and claim the instance's cache by its `TypeId`, whichever comes first, and
//! name it alike for the stores outside the process. The companion of a function without one
//! (which cannot know it is in an `impl`), whose closure is another type, takes the first
//! instance of that name.

use std::any::{Any, TypeId};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

/// A cache boxed for the registry, without its type: the registry's key holds its `TypeId`.
/// Not `dyn Any`, whose vtable compiles a `type_id` function for every cache type (issue 18).
pub(crate) type Boxed = Box<dyn Send + Sync>;

/// A cache [`Boxed`] and leaked.
pub(crate) type Erased = &'static (dyn Send + Sync);

/// The `type_name` of a closure in the memoized function (or its companion): what the
/// expansion passes as a cache's scope, called only when a cell resolves.
pub type Scope = fn() -> &'static str;

/// The scope of a call (as [`Scope`]) and the `TypeId` of the closure it names: what the
/// expansion passes, so that two instances that `type_name` writes alike (two closures, two
/// same-named types of two blocks) are still told apart.
pub type At = fn() -> (&'static str, TypeId);

/// The [`At`] of `closure`'s type: what the expansion passes, `scope(&|| ())`. A function of
/// the type rather than a closure, which a debug build would compile with its `FnOnce` shim for
/// every memoized function.
#[inline]
pub fn scope<F>(closure: &F) -> At {
    let _ = closure;
    at_type::<F>
}

/// [`scope`] for a generic function with `impl Trait` arguments: the scope is `closure`'s, and
/// the instance is told apart by `M`, a type of the function's own type and const parameters
/// alone (the expansion's), not by the closure's type, which names the `impl Trait` arguments'
/// types too: the calls of one instance with arguments of several types share its cache, which
/// its companion (which cannot name them) finds.
#[inline]
pub fn scope_marked<F, M>(closure: &F, marker: std::marker::PhantomData<M>) -> At {
    let _ = (closure, marker);
    at_marked::<F, M>
}

/// [`At`]'s answer for [`scope_marked`]: the closure's own type where what encloses the function
/// names closures (`app::Op<app::main::{{closure}}>`), whose instances `type_name` writes alike
/// and `M` (of the function's parameters alone) would not tell apart.
fn at_marked<F, M>() -> (&'static str, TypeId) {
    let (scope, closure) = at_type::<F>();
    if enclosing(scope).contains("{{closure}}") {
        (scope, closure)
    } else {
        (scope, non_static_id::<M>())
    }
}

/// [`scope`] for a function with a receiver, whose body and companion both name `Self`: the
/// scope is `closure`'s, and the instance is `M`, a type of `Self` and the function's own type
/// parameters (the expansion's), alike in the body and the companion. Both claim the
/// instance's cache by it, so the companion of an instance that `type_name` writes alike (two
/// closures, two same-named types of two blocks as the impl's arguments) is that instance's.
#[inline]
pub fn scope_self<F, M>(closure: &F, marker: std::marker::PhantomData<M>) -> At {
    let _ = (closure, marker);
    at_self::<F, M>
}

/// [`At`]'s answer for [`scope_self`].
fn at_self<F, M>() -> (&'static str, TypeId) {
    (std::any::type_name::<F>(), non_static_id::<M>())
}

/// The `TypeId` of `closure`'s type, which may borrow: one for each instance of a generic
/// function the closure is written in.
#[inline]
pub(crate) fn type_id<F>(closure: &F) -> TypeId {
    let _ = closure;
    non_static_id::<F>()
}

/// [`At`]'s answer for a closure of type `F`, whose type may borrow (`TypeId` ignores
/// lifetimes).
fn at_type<F>() -> (&'static str, TypeId) {
    (std::any::type_name::<F>(), non_static_id::<F>())
}

/// The `TypeId` of `T`, whose type may borrow (`TypeId` ignores lifetimes).
fn non_static_id<T>() -> TypeId {
    trait NonStatic {
        fn id(&self) -> TypeId
        where
            Self: 'static;
    }
    impl<T> NonStatic for std::marker::PhantomData<T> {
        fn id(&self) -> TypeId
        where
            Self: 'static,
        {
            TypeId::of::<T>()
        }
    }
    let phantom = std::marker::PhantomData::<T>;
    let erased: &dyn NonStatic = &phantom;
    // SAFETY: only the lifetime of the trait object changes; `id` reads no data, and a type's
    // `TypeId` does not depend on its lifetimes (the `typeid` crate does the same).
    let erased =
        unsafe { std::mem::transmute::<&dyn NonStatic, &(dyn NonStatic + 'static)>(erased) };
    erased.id()
}

/// A `static`-friendly slot that resolves to one leaked cache per (function, instance, type).
///
/// # Examples
///
/// ```
/// use memo::{Cache, Config};
/// use memo_runtime::private::CacheCell;
///
/// fn scope() -> &'static str { "doc::f::{{closure}}" }
/// static BODY: CacheCell = CacheCell::new();
/// static COMPANION: CacheCell = CacheCell::new();
/// let a: &'static Cache<u32, u32> = BODY.get_or_init("doc::f#0", scope, |_| Cache::new(Config::new()));
/// let b: &'static Cache<u32, u32> = COMPANION.get_or_init("doc::f#0", scope, |_| Cache::new(Config::new()));
/// assert!(std::ptr::eq(a, b));
/// ```
pub struct CacheCell {
    /// The first cache resolved here, once published (`Release`, after `first_type`): the fast
    /// path reads it and its type from the cell itself, one load and a type-id compare that do
    /// not wait on each other (a list node would add a load before both). Never published in an
    /// impl with generic arguments, which may have other instances.
    first: AtomicPtr<()>,
    /// The type of `first`: written once, under the registry's lock, before `first` is published.
    first_type: UnsafeCell<MaybeUninit<TypeId>>,
    /// The caches resolved here, newest first, with their types and scopes: where a generic
    /// `impl`'s instances are found. Null until the first call; nodes are only added, never freed.
    resolved: AtomicPtr<Resolved>,
}

// SAFETY: `first_type` is written once, before `first` is published with `Release`, and read
// only after `first` is seen published with `Acquire`; every other field is atomic.
unsafe impl Sync for CacheCell {}

impl std::fmt::Debug for CacheCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCell")
            .field("resolved", &!self.first.load(Ordering::Acquire).is_null())
            .finish_non_exhaustive()
    }
}

/// A cache and the type and scope it was resolved for; a node of a cell's list.
struct Resolved {
    type_id: TypeId,
    scope: &'static str,
    site: Option<TypeId>,
    cache: Erased,
    next: *const Resolved,
}

/// A cache's id, instance (what encloses the function, so that the body and the companion
/// agree) and type.
type Key = (&'static str, String, TypeId);

/// The caches by [`Key`], each with the type of the closure of the body that claimed it, if one
/// did; and the keys whose cache a thread is making now.
#[derive(Default)]
struct Registry {
    // foldhash, as the stores hash: std's default hasher would link its own seeding and SipHash.
    caches: HashMap<Key, Vec<(Option<TypeId>, Erased)>, foldhash::fast::RandomState>,
    making: Vec<(Key, ThreadId)>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// Told when a thread is done making a cache ([`Making`]).
static MADE: Condvar = Condvar::new();

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cache of `key` for `owner` (see [`claim`]), made by `make` if there is none: once, by one
/// thread, while other callers of `key` wait. A cache is never dropped, so that no code to drop
/// one is compiled for each key and value type (`cache::boxed_memoized`): none is made to be
/// thrown away.
fn made_once(key: &Key, owner: Owner, make: impl FnOnce() -> Boxed) -> Erased {
    let me = std::thread::current().id();
    let mut registry = registry();
    loop {
        if let Some(found) = claim(registry.caches.entry(key.clone()).or_default(), owner) {
            return found;
        }
        match registry.making.iter().find(|(making, _)| making == key) {
            Some(&(_, thread)) if thread == me => panic!(
                "the cache of `{}` is needed while it is being made: its configuration calls the \
                 function",
                key.0
            ),
            Some(_) => registry = MADE.wait(registry).unwrap_or_else(PoisonError::into_inner),
            None => break,
        }
    }
    registry.making.push((key.clone(), me));
    drop(registry);
    // Made outside the lock: the cache's configuration may call another memoized function.
    let making = Making(key);
    let cache: Erased = Box::leak(make());
    registry = self::registry();
    registry
        .caches
        .entry(key.clone())
        .or_default()
        .push((owner.body, cache));
    drop(registry);
    drop(making);
    cache
}

/// A cache being made for this key: once dropped (made, or its making panicked), the callers
/// waiting for it look again.
struct Making<'a>(&'a Key);

impl Drop for Making<'_> {
    fn drop(&mut self) {
        registry().making.retain(|(making, _)| making != self.0);
        MADE.notify_all();
    }
}

impl CacheCell {
    /// An empty cell.
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::private::CacheCell;
    ///
    /// static CELL: CacheCell = CacheCell::new();
    /// let cache: &'static Vec<u8> = CELL.get_or_init("doc::new#0", || "doc::new", |_| vec![1, 2]);
    /// assert_eq!(*cache, [1, 2]);
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            first: AtomicPtr::new(std::ptr::null_mut()),
            first_type: UnsafeCell::new(MaybeUninit::uninit()),
            resolved: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The cache registered under `id`, the instance that `scope` names and type `C`, created
    /// by `init` if it is the first; `init` gets the function's identity, e.g.
    /// `app::Length<app::Feet>::label`.
    ///
    /// A cell must always be asked with the same `id` (each expansion has its own cells).
    ///
    /// # Examples
    ///
    /// ```
    /// use memo_runtime::private::CacheCell;
    ///
    /// static CELL: CacheCell = CacheCell::new();
    /// let feet = || "app::Length<app::Feet>::label::{{closure}}";
    /// let meters = || "app::Length<app::Meters>::label::{{closure}}";
    /// let first: &'static String = CELL.get_or_init("app::label#1", feet, ToString::to_string);
    /// let again: &'static String = CELL.get_or_init("app::label#1", feet, |_| unreachable!("made once"));
    /// assert!(std::ptr::eq(first, again));
    /// assert_eq!(*first, "app::Length<app::Feet>::label");
    /// // Another instance of a generic impl, or another type: a cache of its own.
    /// let other: &'static String = CELL.get_or_init("app::label#1", meters, ToString::to_string);
    /// assert_eq!(*other, "app::Length<app::Meters>::label");
    /// ```
    #[inline]
    pub fn get_or_init<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        scope: Scope,
        init: impl FnOnce(&'static str) -> C,
    ) -> &'static C {
        self.first()
            .unwrap_or_else(|| self.resolve(id, scope(), None, init))
    }

    /// [`get_or_init`](Self::get_or_init) with the scope's closure type too (see [`At`]).
    #[inline]
    pub fn get_or_init_at<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        at: At,
        init: impl FnOnce(&'static str) -> C,
    ) -> &'static C {
        self.first()
            .unwrap_or_else(|| self.resolve_at(id, at, init))
    }

    /// [`get_or_init_at`](Self::get_or_init_at) past its fast path.
    fn resolve_at<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        at: At,
        init: impl FnOnce(&'static str) -> C,
    ) -> &'static C {
        let (scope, site) = at();
        self.resolve(id, scope, Some(site), init)
    }

    /// The cell's first cache, if it is a `C`: [`get_or_init`](Self::get_or_init)'s fast path,
    /// for callers that keep the slow one out of line themselves.
    #[inline]
    pub(crate) fn first<C: Any + Send + Sync>(&self) -> Option<&'static C> {
        let first = self.first_of(TypeId::of::<C>());
        if first.is_null() {
            return None;
        }
        // SAFETY: a cache registered under `TypeId::of::<C>()` is a leaked `C`.
        Some(unsafe { &*(first as *const C) })
    }

    /// [`first`](Self::first) without its type, which a debug build compiles once: the first
    /// cache if it was registered under `type_id`, else null.
    #[inline]
    pub(crate) fn first_of(&self, type_id: TypeId) -> *mut () {
        #[cfg(feature = "test-util")]
        if crate::testing::isolated() {
            return std::ptr::null_mut();
        }
        let first = self.first.load(Ordering::Acquire);
        // SAFETY: `first_type` was written before `first` was published (see `Sync`).
        if !first.is_null() && unsafe { (*self.first_type.get()).assume_init() } == type_id {
            return first;
        }
        std::ptr::null_mut()
    }

    /// Not the first type, or a scope with generic arguments: walk this cell's list, else
    /// register (the first call, or a new instance of a generic `impl`).
    #[cold]
    fn resolve<C: Any + Send + Sync>(
        &self,
        id: &'static str,
        scope: &'static str,
        site: Option<TypeId>,
        init: impl FnOnce(&'static str) -> C,
    ) -> &'static C {
        let mut init = Some(init);
        let mut make = |identity: &'static str| -> Boxed {
            let init = init
                .take()
                .unwrap_or_else(|| unreachable!("a cache is made at most once per call"));
            Box::new(init(identity))
        };
        let erased = self.resolve_listed(id, scope, site, TypeId::of::<C>(), &mut make);
        // SAFETY: registered under `TypeId::of::<C>()`, so boxed by `make` above as a `C`.
        unsafe { &*std::ptr::from_ref(erased).cast::<C>() }
    }

    /// [`get_or_init_at`](Self::get_or_init_at) past its fast path (the caller tried
    /// [`first`](Self::first) itself), for a caller that boxes its cache itself, under
    /// `type_id` (its type's), with `make(identity, with)`: the memoized functions' caches,
    /// boxed so that no code to drop them is compiled (`private::register`).
    pub(crate) fn resolve_boxed_at<A: Copy>(
        &self,
        id: &'static str,
        at: At,
        type_id: TypeId,
        make: fn(&'static str, A) -> Boxed,
        with: A,
    ) -> Erased {
        let (scope, site) = at();
        self.resolve_listed(id, scope, Some(site), type_id, &mut |identity| {
            make(identity, with)
        })
    }

    /// [`resolve`](Self::resolve) without its types: in a test's own registry (feature
    /// `test-util`), else this cell's list first, else [`resolve_erased`](Self::resolve_erased).
    /// Compiled once rather than once per memoized function.
    fn resolve_listed(
        &self,
        id: &'static str,
        scope: &'static str,
        site: Option<TypeId>,
        type_id: TypeId,
        make: &mut dyn FnMut(&'static str) -> Boxed,
    ) -> Erased {
        #[cfg(feature = "test-util")]
        if crate::testing::isolated() {
            let key = (id, instance(id, scope), type_id);
            // Claimed as in the process-wide registry: instances that `type_name` writes alike
            // are told apart by their body's closure type, or with a receiver by `Self`.
            let owner = Owner::of(id, scope, site);
            return crate::testing::isolated_cache(key, owner, &mut || make(owner.name(id, scope)));
        }
        // A generic function with `impl Trait` arguments and no receiver gives a site of its own
        // parameters alone (`scope_marked`), alike in every instance of an impl around it:
        // there, what encloses the function tells those instances apart. With a receiver, the
        // site is of `Self` and the function's own type parameters (`scope_self`), and a generic
        // function's const parameters are in its scope alone.
        let with_self = is_self_marked(id);
        let marked = !with_self && explicit_parameters(id).is_some();
        let by_scope = with_self && is_generic_fn(id);
        // SAFETY: non-null nodes are leaked `Resolved`s, published with `Release` and never freed.
        let mut node = self.resolved.load(Ordering::Acquire).cast_const();
        // SAFETY: as in `get_or_init`.
        while let Some(resolved) = unsafe { node.as_ref() } {
            // By content: one instance's name may sit at several addresses (codegen units).
            // One closure type has one name: with a site, its compare is enough.
            if resolved.type_id == type_id
                && resolved.site == site
                && ((site.is_some() && !by_scope) || resolved.scope == scope)
                && (!marked || enclosing(resolved.scope) == enclosing(scope))
            {
                return resolved.cache;
            }
            node = resolved.next;
        }
        self.resolve_erased(id, scope, site, type_id, make)
    }

    /// The type-independent part of [`resolve`](Self::resolve), compiled once rather than once
    /// per memoized function.
    fn resolve_erased(
        &self,
        id: &'static str,
        scope: &'static str,
        site: Option<TypeId>,
        type_id: TypeId,
        make: &mut dyn FnMut(&'static str) -> Boxed,
    ) -> Erased {
        let path = enclosing(scope);
        let key = (id, instance(id, scope), type_id);
        // A body claims its cache by its closure's type, and with a receiver the body and the
        // companion by their instance's marker; a companion without one takes the first.
        let owner = Owner::of(id, scope, site);
        let erased = made_once(&key, owner, || make(owner.name(id, scope)));
        {
            // The first type resolved here takes the fast path; the lock keeps its writers apart.
            let _registry = registry();
            if self.first.load(Ordering::Acquire).is_null()
                && !is_generic(path)
                && !is_generic_fn(id)
            {
                // SAFETY: `first` is unpublished and the registry's lock is held, so no other
                // thread reads or writes `first_type` now.
                unsafe { (*self.first_type.get()).write(type_id) };
                let cache = std::ptr::from_ref(erased).cast::<()>().cast_mut();
                self.first.store(cache, Ordering::Release);
            }
        }
        // Publish on this cell's list, so the next call takes the fast path. A racing thread may
        // add the same type too: a duplicate node is harmless.
        let mut head = self.resolved.load(Ordering::Acquire);
        let node = Box::leak(Box::new(Resolved {
            type_id,
            scope,
            site,
            cache: erased,
            next: head,
        }));
        while let Err(current) =
            self.resolved
                .compare_exchange(head, node, Ordering::AcqRel, Ordering::Acquire)
        {
            head = current;
            node.next = head;
        }
        erased
    }
}

/// Who asks for a cache: a function's body, by its closure's type, or its companion (`None`);
/// for a function with a receiver, either, by its instance's marker ([`scope_self`]).
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) body: Option<TypeId>,
    /// `type_name` writes closures in the function's path (`app::Op<app::main::{{closure}}>`),
    /// so its instances are told apart by the body's type alone, outside the process too.
    closures: bool,
}

impl Owner {
    /// The owner of a call of `id` from `scope`, whose closure's type is `site`.
    fn of(id: &str, scope: &str, site: Option<TypeId>) -> Self {
        Self {
            body: site.filter(|_| is_self_marked(id) || is_body(id, scope, enclosing(scope))),
            // Not the `impl Trait` arguments' types, which make no instance (`own_arguments`).
            closures: enclosing(scope).contains("{{closure}}")
                || own_arguments(id, scope).contains("{{closure}}"),
        }
    }

    /// The name of the cache this owner makes: the function's [`identity`], and for a body
    /// whose path names closures, a hash of its type (with a receiver, of its instance's marker,
    /// so that the companion names the same entries), so that the instances' entries on disk or
    /// in Redis are their own. A closure's type is the build's: a build of other code or
    /// features may start those entries afresh.
    fn name(self, id: &'static str, scope: &str) -> &'static str {
        let identity = identity(id, scope);
        match self.body.filter(|_| self.closures) {
            Some(body) => {
                use std::hash::{Hash as _, Hasher as _};
                let mut hasher = std::hash::DefaultHasher::new();
                body.hash(&mut hasher);
                let name = format!("{identity}#{:016x}", hasher.finish());
                Box::leak(name.into_boxed_str())
            }
            None => identity,
        }
    }
}

/// The cache of `entries` for `owner`: the one its body claimed, else one no body claimed (made
/// by the companion), now its own (not where the path names closures: that one is named for no
/// instance); for the companion, the first. With a receiver, the body and the companion are
/// owners alike, by their instance's marker: each finds the one the other made.
pub(crate) fn claim(entries: &mut [(Option<TypeId>, Erased)], owner: Owner) -> Option<Erased> {
    let Some(body) = owner.body else {
        return entries.first().map(|entry| entry.1);
    };
    let index = (entries.iter().position(|entry| entry.0 == Some(body))).or_else(|| {
        (!owner.closures)
            .then(|| entries.iter().position(|entry| entry.0.is_none()))
            .flatten()
    })?;
    entries[index].0 = Some(body);
    Some(entries[index].1)
}

/// Whether `scope` is in the body of the function `id` names (not its companion), which has no
/// generic arguments of its own unless it is a generic function (whose instances are keyed
/// apart); `enclosing` is [`enclosing`]`(scope)`.
fn is_body(id: &str, scope: &str, enclosing: &str) -> bool {
    let path = id.rsplit_once('#').map_or(id, |(path, _)| path);
    let name = split_last(path).map_or(path, |(_, name)| name);
    let segment = own_segment(scope)
        .get(enclosing.len()..)
        .map(|f| f.strip_prefix("::").unwrap_or(f));
    let segment = if is_generic_fn(id) {
        segment.map(|s| s.split('<').next().unwrap_or(s))
    } else {
        segment
    };
    segment == Some(name)
}

/// What tells the caches of the function `id` apart, called from `scope`: what encloses it (an
/// impl's type with its generic arguments), and a generic function's own type arguments.
fn instance(id: &str, scope: &str) -> String {
    let path = enclosing(scope);
    if is_generic_fn(id) {
        format!("{path}::{}", own_arguments(id, scope))
    } else {
        path.to_string()
    }
}

/// Whether `id` is a function's with a receiver, whose body and companion give one site, of
/// `Self` ([`scope_self`]): the expansion puts an `s` in its nonce.
fn is_self_marked(id: &str) -> bool {
    id.rsplit_once('#')
        .is_some_and(|(_, nonce)| nonce.as_bytes().contains(&b's'))
}

/// Whether `id` is a generic function's: the expansion ends the nonce of a function with type or
/// const parameters with `g`, and each instance of it gets a cache of its own.
fn is_generic_fn(id: &str) -> bool {
    id.ends_with('g')
}

/// `scope` without its trailing closures: the function's path, with its own arguments.
fn own_segment(scope: &str) -> &str {
    let mut function = scope;
    while let Some(outer) = function.strip_suffix("::{{closure}}") {
        function = outer;
    }
    function
}

/// The function's own generic arguments as `scope` writes them (`<u32, &str>`), or `""`;
/// for a generic function with `impl Trait` arguments ([`explicit_parameters`]), without the
/// types of those arguments, which its companion cannot name.
fn own_arguments(id: &str, scope: &str) -> String {
    let function = own_segment(scope);
    let segment = &function[enclosing(scope).len()..];
    let Some(start) = segment.find('<') else {
        return String::new();
    };
    let written = &segment[start..];
    let Some(count) = explicit_parameters(id) else {
        return written.to_string();
    };
    // The arguments between the outer brackets, split at their top-level commas. Lifetimes
    // (written `'_`, first) are left out: a bound of an `impl Trait` argument (`impl Display +
    // 'a`) makes `'a` early-bound in the function, written, and not in its companion.
    let inner = written
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(written);
    let mut arguments = Vec::new();
    let (mut depth, mut from) = (0_usize, 0);
    let bytes = inner.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if at == 0 || bytes[at - 1] != b'-' => depth = depth.saturating_sub(1),
            b')' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                arguments.push(inner[from..at].trim());
                from = at + 1;
            }
            _ => {}
        }
    }
    arguments.push(inner[from..].trim());
    let mut types = 0;
    let kept: Vec<&str> = arguments
        .into_iter()
        .filter(|argument| {
            !argument.starts_with('\'') && {
                types += 1;
                types <= count
            }
        })
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("<{}>", kept.join(", "))
    }
}

/// The number of type and const parameters of a generic function with `impl Trait` arguments,
/// whose id the expansion ends with `i<count>g`; `None` for another function.
fn explicit_parameters(id: &str) -> Option<usize> {
    let (_, nonce) = id.rsplit_once('#')?;
    let (_, count) = nonce.strip_suffix('g')?.split_once('i')?;
    count.parse().ok()
}

/// The identity of the memoized function with this `id` (`module::function#nonce`) called from
/// `scope`: its path with the crate, the module, the impl's type and the generic arguments
/// resolved, as `std::any::type_name` writes them, e.g. `app::Celsius::boiling` or
/// `<app::Length<app::Feet> as app::Label>::label`. Leaked: one per instance, for the process.
///
/// A generic function's own type arguments are part of it (`app::parse<u32>`). Those of a
/// function with only `impl Trait` arguments are not: such an argument is left out of the key
/// with `key = …`, which says that the value does not depend on it.
#[must_use]
pub(crate) fn identity(id: &'static str, scope: &str) -> &'static str {
    let path = id.rsplit_once('#').map_or(id, |(path, _)| path);
    let arguments = if is_generic_fn(id) {
        own_arguments(id, scope)
    } else {
        String::new()
    };
    let identity = match (enclosing(scope), split_last(path)) {
        ("", _) | (_, None) => format!("{path}{arguments}"),
        (outer, Some((_, name))) => format!("{outer}::{name}{arguments}"),
    };
    Box::leak(identity.into_boxed_str())
}

/// Whether `path` has generic arguments other than lifetimes, which `type_name` writes `'_`: an
/// impl with lifetimes only (`Parser<'_>`) has one instance, and keeps the fast path.
fn is_generic(path: &str) -> bool {
    let bytes = path.as_bytes();
    (0..bytes.len()).any(|at| bytes[at] == b'<' && !only_lifetimes(&bytes[at + 1..]))
}

/// Whether generic arguments (after their `<`) are lifetimes only: `'_>`, `'_, '_>`.
fn only_lifetimes(mut arguments: &[u8]) -> bool {
    loop {
        match arguments {
            [b'\'', b'_', b'>', ..] => return true,
            [b'\'', b'_', b',', b' ', rest @ ..] => arguments = rest,
            _ => return false,
        }
    }
}

/// `path` split at its last `::`, by bytes: a string pattern would link std's two-way search
/// into every binary, for these few short names.
fn split_last(path: &str) -> Option<(&str, &str)> {
    let at = path.as_bytes().windows(2).rposition(|pair| pair == b"::")?;
    Some((&path[..at], &path[at + 2..]))
}

/// What encloses the function that `scope` names: the scope without its trailing closures and
/// the function's own segment (`""` if there is none).
fn enclosing(scope: &str) -> &str {
    let mut path = scope;
    while let Some(outer) = path.strip_suffix("::{{closure}}") {
        path = outer;
    }
    // The last `::` outside angle brackets starts the function's own segment (`->` is not one).
    let bytes = path.as_bytes();
    let mut depth = 0_usize;
    let mut i = bytes.len();
    while i > 1 {
        i -= 1;
        match bytes[i] {
            b'>' if bytes[i - 1] != b'-' => depth += 1,
            b'<' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes[i - 1] == b':' => return &path[..i - 1],
            _ => {}
        }
    }
    ""
}

impl Default for CacheCell {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope = || "cell::tests::f::{{closure}}";

    fn scope_of<F>(_: &F) -> &'static str {
        std::any::type_name::<F>()
    }

    struct Celsius;
    struct Fahrenheit;
    struct Length<U>(U);
    trait Label {
        fn label() -> &'static str;
    }

    impl Celsius {
        fn boiling() -> &'static str {
            scope_of(&|| ())
        }
        fn boiling_cache() -> &'static str {
            scope_of(&|| ())
        }
    }

    impl Fahrenheit {
        fn boiling() -> &'static str {
            scope_of(&|| ())
        }
    }

    impl<U> Length<U> {
        fn label() -> &'static str {
            scope_of(&|| ())
        }
    }

    impl<U> Label for Length<U> {
        fn label() -> &'static str {
            scope_of(&|| ())
        }
    }

    #[allow(
        clippy::unused_async,
        reason = "the scope of an `async fn`'s body is the point"
    )]
    async fn page() -> &'static str {
        scope_of(&|| ())
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut context) {
                return out;
            }
        }
    }

    #[test]
    fn identities_name_the_impl_and_its_generic_arguments() {
        let here = module_path!();
        let boiling = "memo_runtime::cell::tests::boiling#0";
        assert_eq!(
            identity(boiling, Celsius::boiling()),
            format!("{here}::Celsius::boiling")
        );
        assert_eq!(
            identity(boiling, Celsius::boiling_cache()),
            identity(boiling, Celsius::boiling()),
            "the companion names the same function"
        );
        assert_eq!(
            identity(boiling, Fahrenheit::boiling()),
            format!("{here}::Fahrenheit::boiling")
        );
        let label = "memo_runtime::cell::tests::label#1";
        assert_eq!(
            identity(label, Length::<u8>::label()),
            format!("{here}::Length<u8>::label")
        );
        assert_eq!(
            identity(label, <Length<u16> as Label>::label()),
            format!("<{here}::Length<u16> as {here}::Label>::label")
        );
        assert_eq!(
            identity("memo_runtime::cell::tests::page#2", run(page())),
            format!("{here}::page")
        );
        assert_eq!(
            enclosing("a::B<fn() -> u8>::f<u8>::{{closure}}"),
            "a::B<fn() -> u8>"
        );
        assert_eq!(enclosing("f"), "");
    }

    #[test]
    fn impl_trait_arguments_leave_a_generic_functions_instance() {
        let id = "app::f#4i2g";
        assert_eq!(explicit_parameters(id), Some(2));
        assert_eq!(explicit_parameters("app::f#4g"), None);
        assert_eq!(explicit_parameters("app::f#4"), None);
        let scope =
            "app::f<'_, alloc::vec::Vec<(u8, u16)>, 3, &str, app::Op<fn() -> u8>>::{{closure}}";
        assert_eq!(own_arguments(id, scope), "<alloc::vec::Vec<(u8, u16)>, 3>");
        // The companion, whose lifetime a bound of an `impl Trait` argument did not make early.
        let companion = "app::f_cache<alloc::vec::Vec<(u8, u16)>, 3>::{{closure}}";
        assert_eq!(instance(id, scope), instance(id, companion));
        assert_eq!(identity(id, scope), "app::f<alloc::vec::Vec<(u8, u16)>, 3>");
        assert!(is_body(id, scope, enclosing(scope)));
        assert!(
            !Owner::of(id, scope, None).closures,
            "an impl Trait argument's closure"
        );
        // Without `impl Trait` arguments, every argument written makes the instance.
        assert!(own_arguments("app::f#4g", scope).ends_with(", &str, app::Op<fn() -> u8>>"));
    }

    #[test]
    fn each_instance_of_a_generic_impl_has_its_own_cache() {
        static BODY: CacheCell = CacheCell::new();
        static COMPANION: CacheCell = CacheCell::new();
        let id = "memo_runtime::cell::tests::label#9";
        let feet: &'static String = BODY.get_or_init(id, Length::<u8>::label, ToString::to_string);
        let meters: &'static String =
            BODY.get_or_init(id, Length::<u16>::label, ToString::to_string);
        assert!(!std::ptr::eq(feet, meters));
        assert!(feet.ends_with("Length<u8>::label"), "{feet}");
        assert!(meters.ends_with("Length<u16>::label"), "{meters}");
        let again: &'static String =
            BODY.get_or_init(id, Length::<u8>::label, |_| unreachable!("made once"));
        assert!(std::ptr::eq(feet, again));
        // The companion's scope names the same instances.
        let companion: &'static String = COMPANION.get_or_init(
            id,
            || "memo_runtime::cell::tests::Length<u16>::label_cache::{{closure}}",
            |_| unreachable!("made by the body"),
        );
        assert!(std::ptr::eq(meters, companion));
    }

    struct Parser<'a>(std::marker::PhantomData<&'a str>);

    impl Parser<'_> {
        fn token() -> &'static str {
            scope_of(&|| ())
        }
    }

    /// Lifetimes are erased: an impl with lifetimes only has one instance, and its first cache
    /// is published for the fast path; not so a trait's default method or a generic impl.
    #[test]
    fn an_impl_with_lifetimes_only_keeps_the_fast_path() {
        static CELL: CacheCell = CacheCell::new();
        static GENERIC: CacheCell = CacheCell::new();
        let scope = Parser::token;
        assert!(scope().contains("Parser<'_>"), "{}", scope());
        let cache: &'static Vec<u8> = CELL.get_or_init("t#parser", scope, |_| vec![1]);
        assert!(std::ptr::eq(CELL.first::<Vec<u8>>().unwrap(), cache));
        assert!(!is_generic("a::P<'_, '_>"));
        assert!(is_generic("a::P<'_, u8>"));
        assert!(is_generic("<a::A as a::Tr>"));
        assert!(is_generic("a::L<a::P<'_>>"));
        assert!(is_generic("a::P<'_, a::L<'_>>"));
        assert!(is_generic("a::P<u8, '_>"));
        assert!(!is_generic("a::P<'_>::Q<'_>"));
        assert_eq!(split_last("a::b::c"), Some(("a::b", "c")));
        assert_eq!(split_last("c"), None);
        let _: &'static Vec<u8> = GENERIC.get_or_init("t#generic", Length::<u8>::label, |_| vec![]);
        assert!(GENERIC.first::<Vec<u8>>().is_none());
    }

    struct Op<F>(F);

    impl<F> Op<F> {
        fn run() -> (&'static str, TypeId) {
            scope(&|| ())()
        }
        fn run_cache() -> (&'static str, TypeId) {
            scope(&|| ())()
        }
    }

    fn body_of<F>(_: &F) -> At {
        Op::<F>::run
    }

    fn companion_of<F>(_: &F) -> At {
        Op::<F>::run_cache
    }

    fn add_owner<F>(f: &F) -> (Owner, &'static str) {
        let (scope, site) = body_of(f)();
        (
            Owner::of("memo_runtime::cell::tests::run#3", scope, Some(site)),
            scope,
        )
    }

    fn companion_owner<F>(f: &F) -> (Owner, &'static str) {
        let (scope, site) = companion_of(f)();
        (
            Owner::of("memo_runtime::cell::tests::run#3", scope, Some(site)),
            scope,
        )
    }

    /// Two closures are one `type_name` (`…::{{closure}}`): the bodies of their instances claim
    /// a cache each, named apart; a companion takes the first, and what a companion made first
    /// no body claims (its name is no instance's, and a store outside the process must not
    /// hand it to whichever body comes first in each process).
    #[test]
    fn instances_that_type_name_writes_alike_get_a_cache_each() {
        static BODY: CacheCell = CacheCell::new();
        static COMPANION: CacheCell = CacheCell::new();
        let id = "memo_runtime::cell::tests::run#3";
        let (add, double) = (|n: u8| n + 1, |n: u8| n * 2);
        let _ = (add(1), double(1));
        assert_eq!(body_of(&add)().0, body_of(&double)().0, "one name");
        assert_ne!(body_of(&add)().1, body_of(&double)().1, "two types");
        let names: Vec<&str> = [add_owner(&add), add_owner(&double), companion_owner(&add)]
            .into_iter()
            .map(|(owner, scope)| owner.name(id, scope))
            .collect();
        assert!(names[0] != names[1] && names[1] != names[2], "{names:?}");
        assert_eq!(names[2], identity(id, companion_of(&add)().0));
        let companion: &'static Vec<u8> =
            COMPANION.get_or_init_at(id, companion_of(&add), |_| vec![0]);
        let first: &'static Vec<u8> = BODY.get_or_init_at(id, body_of(&add), |_| vec![1]);
        assert!(!std::ptr::eq(companion, first));
        let second: &'static Vec<u8> = BODY.get_or_init_at(id, body_of(&double), |_| vec![2]);
        assert_eq!((first[0], second[0]), (1, 2));
        let again: &'static Vec<u8> =
            BODY.get_or_init_at(id, body_of(&double), |_| unreachable!("made once"));
        assert!(std::ptr::eq(second, again));
        assert!(std::ptr::eq(
            first,
            BODY.get_or_init_at(id, body_of(&add), |_| unreachable!("made once"))
        ));
    }

    impl<F> Op<F> {
        fn seen() -> (&'static str, TypeId) {
            scope_self(
                &|| (),
                std::marker::PhantomData::<(std::marker::PhantomData<Self>,)>,
            )()
        }
        fn seen_cache() -> (&'static str, TypeId) {
            scope_self(
                &|| (),
                std::marker::PhantomData::<(std::marker::PhantomData<Self>,)>,
            )()
        }
    }

    fn seen_of<F>(_: &F) -> (At, At) {
        (Op::<F>::seen, Op::<F>::seen_cache)
    }

    /// With a receiver (an `s` in the nonce), the body and the companion give one site, of
    /// `Self`: each instance's companion is its body's cache, whichever comes first, and both
    /// name it alike (with a hash of the site, the path naming closures).
    #[test]
    fn with_a_receiver_the_companion_is_its_instances_cache() {
        static BODY: CacheCell = CacheCell::new();
        static COMPANION: CacheCell = CacheCell::new();
        let id = "memo_runtime::cell::tests::seen#5s";
        let (add, double) = (|n: u8| n + 1, |n: u8| n * 2);
        let _ = (add(1), double(1));
        let ((add_body, add_companion), (double_body, double_companion)) =
            (seen_of(&add), seen_of(&double));
        assert_eq!(add_body().0, double_body().0, "one name");
        assert_eq!(add_body().1, add_companion().1, "one site");
        let owner = |at: At| {
            let (scope, site) = at();
            Owner::of(id, scope, Some(site)).name(id, scope)
        };
        assert_eq!(owner(double_body), owner(double_companion));
        assert_ne!(owner(add_body), owner(double_body));
        let made: &'static Vec<u8> = COMPANION.get_or_init_at(id, double_companion, |_| vec![2]);
        let first: &'static Vec<u8> = BODY.get_or_init_at(id, add_body, |_| vec![1]);
        let second: &'static Vec<u8> =
            BODY.get_or_init_at(id, double_body, |_| unreachable!("made by the companion"));
        assert!(std::ptr::eq(made, second));
        assert_eq!(first[0], 1);
        let companion: &'static Vec<u8> =
            COMPANION.get_or_init_at(id, add_companion, |_| unreachable!("made by the body"));
        assert!(std::ptr::eq(first, companion));
    }

    #[test]
    fn one_instance_per_id_and_type() {
        static A: CacheCell = CacheCell::new();
        static B: CacheCell = CacheCell::new();
        static C: CacheCell = CacheCell::new();
        let a1: &'static Vec<u8> = A.get_or_init("t#1", SCOPE, |_| vec![1]);
        let b1: &'static Vec<u8> = B.get_or_init("t#1", SCOPE, |_| vec![2]);
        assert!(std::ptr::eq(a1, b1));
        assert_eq!(*b1, [1]);
        // Another type in the same cell (a generic impl): its own instance, shared too.
        let a2: &'static Vec<u16> = A.get_or_init("t#1", SCOPE, |_| vec![3]);
        let b2: &'static Vec<u16> = B.get_or_init("t#1", SCOPE, |_| vec![4]);
        assert!(std::ptr::eq(a2, b2));
        // Another id: another instance.
        let c: &'static Vec<u8> = C.get_or_init("t#2", SCOPE, |_| vec![5]);
        assert_eq!(*c, [5]);
        assert_eq!(
            *A.get_or_init::<Vec<u8>>("t#1", SCOPE, |_| unreachable!()),
            [1]
        );
    }

    /// Threads racing on a fresh cell with two types all get the one instance of their type,
    /// whichever type took the cell's fast path.
    #[test]
    fn racing_first_calls_agree() {
        static CELL: CacheCell = CacheCell::new();
        let found: Vec<(usize, usize)> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|t| {
                    s.spawn(move || {
                        if t % 2 == 0 {
                            let v: &'static Vec<u8> =
                                CELL.get_or_init("t#race", SCOPE, |_| vec![1]);
                            (0, std::ptr::from_ref(v).addr())
                        } else {
                            let v: &'static Vec<u32> =
                                CELL.get_or_init("t#race", SCOPE, |_| vec![2]);
                            (1, std::ptr::from_ref(v).addr())
                        }
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for kind in [0, 1] {
            let mut addresses = found.iter().filter(|f| f.0 == kind).map(|f| f.1);
            let first = addresses.next().unwrap();
            assert!(addresses.all(|a| a == first), "one instance of type {kind}");
        }
        assert_eq!(
            *CELL.get_or_init::<Vec<u8>>("t#race", SCOPE, |_| unreachable!()),
            [1]
        );
        assert_eq!(
            *CELL.get_or_init::<Vec<u32>>("t#race", SCOPE, |_| unreachable!()),
            [2]
        );
    }

    #[test]
    fn callers_racing_to_make_a_cache_make_it_once() {
        static CELL: CacheCell = CacheCell::new();
        const SCOPE: Scope = || "memo_runtime::cell::tests::once";
        const THREADS: usize = 8;
        let made = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(THREADS);
        let found: Vec<usize> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let cache: &'static Vec<u8> = CELL.get_or_init("t#once", SCOPE, |_| {
                            made.fetch_add(1, Ordering::Relaxed);
                            // Long enough for the others to arrive while it is being made.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            vec![1]
                        });
                        std::ptr::from_ref(cache).addr()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            made.load(Ordering::Relaxed),
            1,
            "none made to be thrown away"
        );
        assert!(found.iter().all(|&a| a == found[0]), "one cache");
    }

    #[test]
    fn a_cache_needed_while_it_is_made_is_a_clear_panic() {
        static CELL: CacheCell = CacheCell::new();
        const SCOPE: Scope = || "memo_runtime::cell::tests::again";
        let again = std::panic::catch_unwind(|| {
            let _: &'static Vec<u8> = CELL.get_or_init("t#again", SCOPE, |_| {
                let _: &'static Vec<u8> = CELL.get_or_init("t#again", SCOPE, |_| vec![1]);
                vec![2]
            });
        });
        let message = again.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.contains("needed while it is being made"),
            "{message}"
        );
        let cache: &'static Vec<u8> = CELL.get_or_init("t#again", SCOPE, |_| vec![3]);
        assert_eq!(*cache, [3], "the key is free again");
    }

    #[test]
    fn a_cache_whose_making_panicked_is_made_by_the_next_caller() {
        static CELL: CacheCell = CacheCell::new();
        const SCOPE: Scope = || "memo_runtime::cell::tests::retry";
        let made = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(2);
        let outcomes: Vec<Option<usize>> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        let cache: &'static Vec<u8> = CELL.get_or_init("t#retry", SCOPE, |_| {
                            let attempt = made.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            assert!(attempt > 0, "the first making fails");
                            vec![1]
                        });
                        std::ptr::from_ref(cache).addr()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().ok()).collect()
        });
        assert_eq!(
            made.load(Ordering::Relaxed),
            2,
            "made again after the panic, once"
        );
        assert_eq!(outcomes.iter().filter(|o| o.is_some()).count(), 1);
    }

    #[test]
    fn a_cache_made_while_another_is_made_does_not_wait_for_it() {
        static OUTER: CacheCell = CacheCell::new();
        static INNER: CacheCell = CacheCell::new();
        const SCOPE: Scope = || "memo_runtime::cell::tests::nested";
        let outer: &'static Vec<u8> = OUTER.get_or_init("t#outer", SCOPE, |_| {
            let inner: &'static Vec<u8> = INNER.get_or_init("t#inner", SCOPE, |_| vec![2]);
            vec![inner[0] + 1]
        });
        assert_eq!(*outer, [3]);
    }
}
