//! One shard of the in-memory store: entries in a slab behind a hash index, evicted by a policy.
//!
//! The entries sit in a vector that grows to the shard's bound and no further (`shard/slab.rs`);
//! the hash index holds only their 4-byte numbers, in a power of two of 4-byte buckets at most
//! three quarters full (`shard/index.rs`): paid in buckets rather than in whole entries, that is
//! about 52 bytes an entry of `u64` keys and values instead of 101 (`benches/peers.rs`), for one
//! more load on a hit. A hit only raises the entry's use count, and only while it is below the
//! policy's cap (1 for LRU's reference bit, 0 for FIFO), so readers sharing the shard's read lock
//! do not write to a warm entry.
//!
//! The eviction order lives beside the table in rings of entry numbers (4 bytes an entry): the
//! writer pops a number and keeps, moves or evicts its entry as the policy says
//! (`shard/{auto,clock,lfu,fifo}.rs`). In a bounded shard every entry's number is in exactly one
//! ring, once. An entry removed by other means (invalidated, expired) leaves its number behind,
//! *vacated*: the slab gives it to no new entry until the ring lets it go (the hand passes it, or
//! a compaction once vacated numbers make up a fifth of the rings), so a number never stands for
//! a newer entry at an older one's place, and a removal costs no search of the ring.
//!
//! Compiled once: everything but the typed entries. The index, the rings, the ghost, the sketch,
//! the expiry heap, the policies and their bookkeeping live in [`Core`] and run in [`Ops`],
//! which is not generic, on a [`RawShard`]; it finds, claims and frees the entries' places in the
//! untyped slab, reads their stamps and use counts there, and reaches the entries themselves
//! only through [`Entries`], a trait object whose few methods (hash a key, weigh, move an entry
//! out, move the new one in, compare with its key) are all that each key and value type adds.
//! The reads off the hit path ([`RawShard::look`]) compare keys through [`SlotKey`] alone. The
//! hit path (`find`, `get`, `live`) stays typed and inlined; only misses, inserts and removals
//! make indirect calls.

mod auto;
pub(crate) mod climb;
mod clock;
mod expiry;
mod fifo;
mod index;
mod lfu;
pub(crate) mod shadow;
mod slab;

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use self::expiry::Expiry;
use self::index::Index;
pub(crate) use self::slab::Kind as SlabKind;
use self::slab::{RawSlab, Slab};
use super::Counts;
use super::ghost::Ghost;
use super::listener::{Kept, RawRemoved, RemovalCause, Removed};
use super::sketch::Sketch;
use super::weight::{Tally, Weigher};
use crate::config::Policy;
use crate::erased::{self, TypeOps};
use crate::lookup::Lookup;

/// The use count in a slot's `uses` byte.
const USES: u8 = 0x7F;
/// Set in a slot's `uses` byte while its number is in the `main` ring (not `small`).
const MAIN: u8 = 0x80;
/// The longest early refresh a slot records (2^47 ns, 39 hours; see `Meta::early_low`).
const EARLY: u64 = (1 << 47) - 1;
/// Set in a slot's `early_high` when its time to live is its own (see `Stamp::own`).
const OWN: u16 = 1 << 15;

/// An entry: key, value, and its stamps and use count; 32 bytes for `u64` keys and values.
///
/// `meta` first (`repr(C)`): the shard's machinery reads it at the start of a place, whatever
/// the types.
#[repr(C)]
struct Slot<K, V> {
    meta: Meta,
    key: K,
    value: V,
}

/// What the shard's machinery reads and writes of an entry, whatever its types: 16 bytes.
struct Meta {
    /// When the time to live ends (0 = never); the entry may be served stale for the shard's
    /// `grace` after that.
    expires: u64,
    /// How long before `expires` an early refresh is due (0 = at `expires`), in 47 bits split in
    /// two: an offset in 6 bytes where a second stamp would take 8 and round the slot up to 40.
    /// A longer lead is cut to 39 hours, so such a refresh starts a little later than drawn.
    /// The top bit of `early_high` is [`OWN`]: the entry's time to live is its own.
    early_low: u32,
    early_high: u16,
    /// Hits counted up to the shard's cap (`USES`), and which ring holds the number (`MAIN`).
    /// Hits write the count, the writer everything.
    uses: AtomicU8,
    /// Set by the one caller that refreshes this entry while others keep being served.
    refreshing: AtomicBool,
}

impl Meta {
    /// Unstamped and unused: the `meta` of an entry being inserted, written over when it is
    /// placed.
    const fn empty() -> Self {
        Self {
            expires: 0,
            early_low: 0,
            early_high: 0,
            uses: AtomicU8::new(0),
            refreshing: AtomicBool::new(false),
        }
    }

    fn new(stamp: Stamp, uses: u8) -> Self {
        let mut meta = Self {
            expires: 0,
            early_low: 0,
            early_high: 0,
            uses: AtomicU8::new(uses),
            refreshing: AtomicBool::new(false),
        };
        meta.stamp(stamp);
        meta
    }

    /// Records when the value expires and when its early refresh is due.
    fn stamp(&mut self, stamp: Stamp) {
        self.expires = stamp.expires;
        let early = if stamp.refresh_at == 0 {
            0
        } else {
            stamp.expires.saturating_sub(stamp.refresh_at).min(EARLY)
        };
        #[allow(clippy::cast_possible_truncation, reason = "split into 32 + 15 bits")]
        {
            self.early_low = early as u32;
            self.early_high = (early >> 32) as u16 | if stamp.own { OWN } else { 0 };
        }
    }

    /// Whether the entry's time to live is its own ([`Stamp::own`]): a hit does not renew it.
    fn has_own_ttl(&self) -> bool {
        self.early_high & OWN != 0
    }

    /// Whether an expiry item due at `due` stands for this entry's current expiry (not for an
    /// earlier value's, nor another entry's at this place).
    fn is_due_at(&self, due: u64, grace: u64) -> bool {
        self.expires != 0 && Expiry::rounded(self.expires.saturating_add(grace)) == due
    }

    /// Past its time to live and its grace: gone for good.
    #[inline]
    fn is_expired(&self, now: u64, grace: u64) -> bool {
        self.expires != 0 && now >= self.end(grace)
    }

    /// When it is gone for good: its time to live and the grace after it.
    #[inline]
    fn end(&self, grace: u64) -> u64 {
        self.expires.saturating_add(grace)
    }

    /// Past its time to live, or its early refresh is due (`before` as for `Shard::get`).
    fn refresh_due(&self, before: &dyn Fn(u64) -> bool) -> bool {
        let early = u64::from(self.early_low) | u64::from(self.early_high & !OWN) << 32;
        // `early` is at most `expires`: it was cut from `expires - refresh_at`.
        self.expires != 0 && !before(self.expires - early)
    }

    /// Makes this caller the one that refreshes the entry; `false` if another already is.
    fn claim_refresh(&self) -> bool {
        !self.refreshing.load(Ordering::Relaxed) && !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

/// When a new value expires and when its early refresh is due (0 = never, for each).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stamp {
    pub(crate) expires: u64,
    pub(crate) refresh_at: u64,
    /// Its time to live is its own (`insert_with_ttl`, `ttl_from`), not the store's: a hit in a
    /// store with a time to idle does not renew it.
    pub(crate) own: bool,
}

/// How a shard serves entries near the end of their time to live.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Renewal {
    /// How long past its time to live an entry may be served while it is refreshed (ns).
    pub(crate) grace: u64,
}

/// The fields a hit reads come first, in this order (`repr(C)`), so that with the gate's writer
/// flag before them they sit in the shard's first two cache lines rather than in four scattered
/// ones.
#[repr(C)]
pub(crate) struct Shard<K, V> {
    /// The number of each entry, by the hash of its key. It names only entries the slab holds
    /// (`find` reads them unchecked): a number goes into it after its entry enters the slab, and
    /// out of it before its entry leaves.
    index: Index,
    /// The most uses a hit records: a hit writes its entry only while the count is below this.
    cap: u8,
    /// Read by hits on entries with a time to live.
    renewal: Renewal,
    /// The entries, by number.
    slab: Slab<Slot<K, V>>,
    /// The eviction order, the expiry heap, the policy's state and the counts.
    core: Core,
    /// The weigher, if entries are weighed (their total is the core's `weight`), untyped.
    weigher: Option<Weighing>,
    /// What left during the current write, for the store's listener (`listener.rs`).
    removed: Removed<K, V>,
}

/// A [`Shard`] without its types, just built: the same fields in the same order (`repr(C)`),
/// each laid out as its typed counterpart (a slab's typed side is a `repr(C)` wrapper of
/// [`RawSlab`]; a weigher and a [`Removed`] are null pointers until set). The store builds and
/// keeps its shards this way, in code compiled once (a `RawShard` drops as the `Shard` it stands
/// for), and views them as `Shard`s where it works with their types ([`Shard::of_raw_mut`]).
#[repr(C)]
pub(crate) struct RawShard {
    index: Index,
    cap: u8,
    renewal: Renewal,
    slab: RawSlab,
    core: Core,
    weigher: Option<Weighing>,
    removed: RawRemoved,
}

impl RawShard {
    /// An empty shard holding up to `capacity` entries (`usize::MAX`: unbounded) of `kind`.
    #[inline(never)]
    pub(crate) fn new(capacity: usize, renewal: Renewal, policy: Policy, kind: SlabKind) -> Self {
        Self {
            index: Index::new(),
            cap: match policy {
                Policy::Auto => auto::cap(capacity),
                Policy::Lru => clock::CAP,
                Policy::Lfu => lfu::CAP,
                Policy::Fifo => fifo::CAP,
            },
            renewal,
            slab: RawSlab::of(capacity, kind),
            core: Core::new(capacity, renewal.grace, policy),
            weigher: None,
            removed: RawRemoved::NONE,
        }
    }
}

/// A shard's state apart from its entries and its index; not generic.
struct Core {
    policy: Policy,
    capacity: usize,
    /// How long past its time to live an entry may be served (the shard's `renewal.grace`).
    grace: u64,
    /// Whether the rings hold the eviction order: the shard is bounded by count or by weight.
    ordered: bool,
    /// Entry numbers in eviction order: of every entry (LRU, LFU, FIFO) or of the main queue
    /// (auto).
    main: VecDeque<u32>,
    /// Auto: the numbers of the small queue, how many entries it holds, and how many it may
    /// hold before it gives way.
    small: VecDeque<u32>,
    small_len: usize,
    small_target: usize,
    /// Auto: the share of the shard `small_target` was made from (`climb.rs`), and the misses
    /// not yet reported to the store's climber.
    share: u32,
    batch: climb::Batch,
    /// Numbers the rings still name whose entries were removed by other means (see the module
    /// doc); kept from reuse until the rings let them go.
    vacated: usize,
    /// When the entries with a time to live expire, earliest first (`shard/expiry.rs`).
    expiry: Expiry,
    /// Auto: keys lately evicted from the small queue.
    ghost: Ghost,
    /// Auto: how often keys were asked for lately (misses, and hits credited by the hand).
    sketch: Sketch,
    /// LFU: inserts since the use counts were last halved.
    since_aging: usize,
    /// Whether any entry can expire.
    expiring: bool,
    /// Entries this shard removed on its own; written under the write lock only.
    counts: Counts,
    /// Whether entries are weighed; the weight held and this shard's share of `max_weight`.
    weighed: bool,
    weight: Tally,
}

impl Core {
    #[inline(never)]
    fn new(capacity: usize, grace: u64, policy: Policy) -> Self {
        let bounded = capacity != usize::MAX;
        let auto = bounded && policy == Policy::Auto;
        Self {
            policy,
            capacity,
            grace,
            ordered: bounded,
            main: VecDeque::new(),
            small: VecDeque::new(),
            small_len: 0,
            vacated: 0,
            expiry: Expiry::default(),
            small_target: if auto {
                auto::small_target(capacity)
            } else {
                0
            },
            share: climb::START,
            batch: climb::Batch::default(),
            ghost: Ghost::new(if auto { auto::ghost_size(capacity) } else { 0 }),
            sketch: Sketch::new(if auto { capacity } else { 0 }),
            since_aging: 0,
            expiring: false,
            counts: Counts {
                hits: 0,
                evicted: 0,
                expired: 0,
                errors: 0,
            },
            weighed: false,
            weight: Tally::none(),
        }
    }

    /// On a miss of the default policy: takes the climber's `share` of the shard for the small
    /// queue, and counts the miss; the misses to report to the climber (0 but once a batch).
    #[inline]
    fn climb(&mut self, share: u32) -> climb::Batch {
        if self.policy != Policy::Auto || self.capacity == usize::MAX {
            return climb::Batch::default();
        }
        if share != self.share {
            self.share = share;
            self.small_target = climb::part(self.capacity, share);
        }
        self.batch.misses += 1;
        #[allow(clippy::cast_possible_truncation, reason = "at most 256")]
        let batch = (self.capacity / 16).clamp(8, 256) as u32;
        if self.batch.misses < batch {
            return climb::Batch::default();
        }
        std::mem::take(&mut self.batch)
    }

    /// Forgets the order of every entry (they are all taken out).
    fn clear(&mut self) {
        self.since_aging = 0;
        self.main = VecDeque::new();
        self.small = VecDeque::new();
        self.small_len = 0;
        self.vacated = 0;
        self.expiry.clear();
        self.ghost.clear();
        self.sketch.clear();
    }

    /// When an entry stamped `stamp` goes for good: its expiry and the shard's grace (0 = never).
    const fn gone_at(&self, stamp: Stamp) -> u64 {
        if stamp.expires == 0 {
            0
        } else {
            stamp.expires.saturating_add(self.grace)
        }
    }
}

/// The typed side of a shard, as its machinery sees it: one small vtable per key and value
/// types. Entries are handed to it by their places in the slab, found, claimed and freed by the
/// machinery.
pub(crate) trait Entries {
    /// The hash of the key of the entry at `slot`, a held place.
    fn hash(&self, slot: NonNull<u8>) -> u64;
    /// The weight by `weigher` (the shard's) of the entry at `slot`, a held place, or of the
    /// entry being inserted for `None`.
    fn weigh(&self, weighing: Weighing, slot: Option<NonNull<u8>>) -> u64;
    /// Reads the entry out of `slot`, a place just vacated, and hands it to the shard's
    /// listener as `cause` (by `removed`, the shard's) or drops it; its `uses` byte.
    fn take(&mut self, removed: &mut RawRemoved, slot: NonNull<u8>, cause: RemovalCause) -> u8;
    /// Does with the entry being inserted what `new` says (`removed` as for `take`).
    fn settle(&mut self, removed: &mut RawRemoved, new: Settle);
    /// Whether the entry at `slot`, a held place, has the key being inserted.
    fn is_new(&self, slot: NonNull<u8>) -> bool;
}

/// What becomes of the entry being inserted ([`Entries::settle`]).
#[derive(Clone, Copy)]
pub(crate) enum Settle {
    /// Its value takes the place of the value at `slot`, a held place of the same key; the old
    /// one goes to the listener as `cause` (replaced, or expired if it had), and the caller
    /// stamps the entry.
    Replace(NonNull<u8>, RemovalCause),
    /// It is not stored: it goes to the listener as evicted.
    Decline,
    /// Its key and value are written at `slot`, a new place (the caller writes its `meta`).
    Place(NonNull<u8>),
}

/// A shard's entries for its machinery: the untyped slab and the other parts that handle the
/// entries, read in code compiled once (every place starts with the entry's [`Meta`], see
/// [`Slot`]), and the typed rest behind [`Entries`].
struct Held<'a> {
    slab: &'a mut RawSlab,
    removed: &'a mut RawRemoved,
    weigher: Option<Weighing>,
    typed: &'a mut dyn Entries,
}

impl Held<'_> {
    /// How many entries are held.
    fn len(&self) -> usize {
        self.slab.len()
    }

    /// The stamps and use count of entry `at`, if it is held.
    fn meta(&self, at: u32) -> Option<&Meta> {
        // SAFETY: a held place is a `Slot`, which starts with its `Meta`.
        self.slab
            .get(at)
            .map(|place| unsafe { place.cast::<Meta>().as_ref() })
    }

    /// The same, to write.
    fn meta_mut(&mut self, at: u32) -> Option<&mut Meta> {
        // SAFETY: as in `meta`; `&mut self` makes it the only reference.
        self.slab
            .get(at)
            .map(|place| unsafe { place.cast::<Meta>().as_mut() })
    }

    /// Lets number `at`, of an entry taken out by `take(at, true, _)`, go to a new entry.
    fn release(&mut self, at: u32) {
        self.slab.release(at);
    }

    /// Calls `each` with every held entry's stamps and use count.
    fn each(&mut self, each: &mut dyn FnMut(&mut Meta)) {
        // SAFETY: as in `meta_mut`.
        self.slab
            .each(&mut |place| each(unsafe { place.cast::<Meta>().as_mut() }));
    }

    /// The hash of entry `at`'s key (popped since the last change).
    fn hash(&self, at: u32) -> u64 {
        let slot = self
            .slab
            .get(at)
            .expect("an entry popped since the last change");
        self.typed.hash(slot)
    }

    /// The weight of entry `at` if it is held (of the entry being inserted for `None`), if
    /// entries are weighed.
    fn weigh(&self, at: Option<u32>) -> Option<u64> {
        let weigher = self.weigher?;
        let slot = match at {
            Some(at) => Some(self.slab.get(at)?),
            None => None,
        };
        Some(self.typed.weigh(weigher, slot))
    }

    /// Takes entry `at` out of the slab (keeping its number from new entries if `vacate`) and
    /// hands it to the listener as `cause` (or drops it); its `uses` byte, or `None` if nothing
    /// is held at `at`. Its weight is the caller's to take out of the total first.
    fn take(&mut self, at: u32, vacate: bool, cause: RemovalCause) -> Option<u8> {
        let slot = self.slab.vacate(at)?;
        if !vacate {
            // Free before the entry is read out: nothing claims the number meanwhile, and an
            // entry whose `Drop` panics (dropped here without a listener) leaves the slab whole.
            self.slab.release(at);
        }
        Some(self.typed.take(self.removed, slot, cause))
    }

    /// Puts the value being inserted in place of entry `at`'s (the same key), handing the old
    /// one to the listener as `cause`; the caller stamps it.
    fn replace(&mut self, at: u32, cause: RemovalCause) {
        let slot = self.slab.get(at).expect("an entry just found");
        self.typed
            .settle(self.removed, Settle::Replace(slot, cause));
    }

    /// The entry being inserted is not stored: it goes to the listener as evicted.
    fn decline(&mut self) {
        self.typed.settle(self.removed, Settle::Decline);
    }

    /// Stores the entry being inserted with `stamp` and `uses` (its weight is the caller's to
    /// add); its number.
    fn place(&mut self, stamp: Stamp, uses: u8) -> u32 {
        let typed = &mut *self.typed;
        let removed = &mut *self.removed;
        self.slab.insert_with(|slot| {
            typed.settle(removed, Settle::Place(slot));
            // SAFETY: a new place of a `Slot`, which starts with its `Meta` (`repr(C)`).
            unsafe { slot.cast::<Meta>().write(Meta::new(stamp, uses)) };
        })
    }
}

/// The key being inserted, as the finds off the hit path compare it.
struct NewKey<'a>(&'a dyn Entries);

impl SlotKey for NewKey<'_> {
    fn is(&self, slot: NonNull<u8>) -> bool {
        self.0.is_new(slot)
    }
}

/// What the shard's machinery needs of an entry's type beyond its [`Meta`], as sizes and plain
/// functions: one small table of constants per key and value types ([`Shard::TYPE`]), read by
/// [`Typed`], which is compiled once.
pub(crate) struct SlotType {
    /// The size of a `Slot<K, V>`.
    size: usize,
    /// Where its value starts, and the value's size.
    value_at: usize,
    value_size: usize,
    /// Drops a `Slot<K, V>` in place (the slab's own, [`Slab::DROP`]); `None` if nothing to drop.
    drop: Option<unsafe fn(*mut u8)>,
    /// Where its key starts, and the key type's [`TypeOps`] (which compare keys).
    key_at: usize,
    key_ops: TypeOps,
    /// Hashes a `Slot<K, V>`'s key by the hasher of the store's type.
    hash: HashAt,
    /// Whether a `Slot<K, V>` fits in an [`EntryPlace`] ([`TypeOf::FITS_PLACE`]).
    fits_place: bool,
}

impl SlotType {
    /// The key type's ops.
    pub(crate) fn key_ops(&self) -> TypeOps {
        self.key_ops
    }

    /// Builds in `place` an entry of these types, unstamped: a clone of the `V` at `value` and
    /// the `K` taken out of the `Option<K>` at `key`, to give up to its store
    /// (`RawMemory::put_entry`). `None`, with nothing cloned or taken, if `key` holds `None`; if
    /// the clone panics, nothing was taken.
    ///
    /// # Panics
    ///
    /// If a `Slot<K, V>` does not fit in an [`EntryPlace`] (the pair's insert is its typed one).
    ///
    /// # Safety
    ///
    /// `value_ops` are `V`'s; `key` points to an `Option<K>`, borrowed mutably, and `value` to a
    /// `V`, borrowed, while the call lasts.
    pub(crate) unsafe fn fill(
        &self,
        place: &mut EntryPlace,
        key: *mut (),
        (value_ops, value): (TypeOps, *const ()),
    ) -> Option<NonNull<u8>> {
        assert!(self.fits_place, "an entry that does not fit its place");
        let at = NonNull::from(place).cast::<u8>();
        // SAFETY: the caller's promise; the slot fits, and each part is written at its offset
        // within the place.
        unsafe {
            if erased::some_in(self.key_ops, key).is_null() {
                return None;
            }
            erased::clone_to(value_ops, value, at.as_ptr().add(self.value_at).cast());
            erased::take_to(self.key_ops, key, at.as_ptr().add(self.key_at).cast());
            at.cast::<Meta>().write(Meta::empty());
        }
        Some(at)
    }
}

/// Memory on the stack for an entry being inserted, laid out as its slot, where the slot fits
/// ([`TypeOf::FITS_PLACE`]): so that code compiled once builds it ([`SlotType::fill`]).
#[repr(C, align(16))]
pub(crate) struct EntryPlace(std::mem::MaybeUninit<[u8; 256]>);

impl EntryPlace {
    pub(crate) const fn new() -> Self {
        Self(std::mem::MaybeUninit::uninit())
    }
}

/// The [`SlotType`] of the entries of a `Shard<K, V>` with keys hashed by an `S`.
pub(crate) struct TypeOf<K, V, S>(PhantomData<fn(K, V, S)>);

impl<K, V, S> TypeOf<K, V, S> {
    /// Whether a `Slot<K, V>` fits in an [`EntryPlace`].
    pub(crate) const FITS_PLACE: bool = size_of::<Slot<K, V>>() <= size_of::<EntryPlace>()
        && align_of::<Slot<K, V>>() <= align_of::<EntryPlace>();
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher> TypeOf<K, V, S> {
    pub(crate) const TYPE: &'static SlotType = &SlotType {
        size: size_of::<Slot<K, V>>(),
        value_at: std::mem::offset_of!(Slot<K, V>, value),
        value_size: size_of::<V>(),
        drop: Slab::<Slot<K, V>>::DROP,
        key_at: std::mem::offset_of!(Slot<K, V>, key),
        key_ops: erased::key_ops::<K>,
        hash: hash_at::<K, V, S>,
        fits_place: Self::FITS_PLACE,
    };
}

/// Where a `Slot<K, V>`'s value starts, and how a `V` is cloned into an `Option<V>`: how code
/// compiled once reads an entry's value into a caller's `Option<V>` (`Base::read_cold`).
pub(crate) struct ValueAt {
    at: usize,
    ops: TypeOps,
}

impl ValueAt {
    /// The one for `Slot<K, V>`s.
    pub(crate) const fn of<K, V: Clone>() -> Self {
        Self {
            at: std::mem::offset_of!(Slot<K, V>, value),
            ops: erased::value_ops::<V>,
        }
    }

    /// Clones the value of the `Slot<K, V>` at `slot` into the `Option<V>` at `out`.
    ///
    /// # Safety
    ///
    /// This is the `Slot<K, V>`'s `ValueAt`; `slot` is held while the call lasts, and `out`
    /// points to an `Option<V>` that holds `None`.
    pub(crate) unsafe fn clone_value(&self, slot: NonNull<u8>, out: NonNull<u8>) {
        // SAFETY: the caller's promise.
        unsafe {
            erased::clone_into(
                self.ops,
                slot.as_ptr().add(self.at).cast(),
                out.as_ptr().cast(),
            );
        }
    }
}

/// What code compiled once needs of a store's key and value types to read an entry by a lent key
/// into a caller's `Option<V>` (`RawMemory::get_lent`).
pub(crate) struct EntryOps {
    /// Where a `Slot<K, V>`'s key starts, and the key type's [`TypeOps`] (which compare keys).
    key_at: usize,
    key_ops: TypeOps,
    /// How its value is read.
    pub(crate) value: ValueAt,
}

impl EntryOps {
    /// The one for the entries `slot` describes, whose value type's ops are `value_ops`: made
    /// when needed, from what their tables hold already, rather than a table of its own per key
    /// and value type.
    pub(crate) fn of(slot: &SlotType, value_ops: TypeOps) -> Self {
        Self {
            key_at: slot.key_at,
            key_ops: slot.key_ops,
            value: ValueAt {
                at: slot.value_at,
                ops: value_ops,
            },
        }
    }

    /// The key at `key` as a [`SlotKey`] of these entries.
    pub(crate) fn key(&self, key: *const ()) -> LentKey<'_> {
        LentKey { key, ops: self }
    }
}

/// A key lent without its type, as a [`SlotKey`] of the entries its [`EntryOps`] are of.
pub(crate) struct LentKey<'a> {
    key: *const (),
    ops: &'a EntryOps,
}

impl SlotKey for LentKey<'_> {
    fn is(&self, slot: NonNull<u8>) -> bool {
        // SAFETY: a `LentKey` pairs a `K` with the `EntryOps` of the `Slot<K, V>`s of the shard
        // it searches (`RawMemory::get_lent`), and `slot` is a held place of that shard.
        unsafe {
            erased::eq(
                self.ops.key_ops,
                self.key,
                slot.as_ptr().add(self.ops.key_at).cast(),
            )
        }
    }
}

/// Hashes the key of the `Slot<K, V>` at a place by the hasher at a pointer ([`hash_at`]).
type HashAt = unsafe fn(NonNull<()>, NonNull<u8>) -> u64;

/// Weighs the `Slot<K, V>` at a place by a weigher, a `Weigher<K, V>` as a `fn()` ([`weigh_at`]).
type WeighAt = unsafe fn(fn(), NonNull<u8>) -> u64;

/// A shard's weigher, untyped, with the function that applies it to an entry.
#[derive(Clone, Copy)]
pub(crate) struct Weighing {
    /// The `Weigher<K, V>` set on the shard ([`Shard::weigh`]).
    weigher: fn(),
    /// [`weigh_at::<K, V>`](weigh_at).
    at: WeighAt,
}

/// # Safety
///
/// `hasher` points to an `S`, and `slot` to a `Slot<K, V>`, both borrowed while the call lasts.
#[allow(
    clippy::needless_borrows_for_generic_args,
    reason = "hashed as the lookup by a borrowed key is (see below)"
)]
#[allow(
    clippy::ptr_as_ptr,
    reason = "casts: `cast` and `as_ref` would be compiled for each type in a debug build"
)]
unsafe fn hash_at<K: Hash, V, S: BuildHasher>(hasher: NonNull<()>, slot: NonNull<u8>) -> u64 {
    // SAFETY: the caller's promise.
    let (hasher, slot) = unsafe {
        (
            &*(hasher.as_ptr() as *const S),
            &*(slot.as_ptr() as *const Slot<K, V>),
        )
    };
    // Hashed as `&&K`, the hit path's lookup by a borrowed key hashes it (`Hash` of a reference
    // is its referent's): one `hash_one` per key type, not two, in a debug build.
    hasher.hash_one(&&slot.key)
}

/// # Safety
///
/// `weigher` is a `Weigher<K, V>` and `slot` points to a `Slot<K, V>`, borrowed while the call
/// lasts.
unsafe fn weigh_at<K, V>(weigher: fn(), slot: NonNull<u8>) -> u64 {
    // SAFETY: the caller's promise; function pointers of any signature have one layout.
    let weigh = unsafe { std::mem::transmute::<fn(), Weigher<K, V>>(weigher) };
    // SAFETY: the caller's promise.
    let slot = unsafe { slot.cast::<Slot<K, V>>().as_ref() };
    weigh(&slot.key, &slot.value)
}

/// # Safety
///
/// As for [`KeepAt`](super::listener::KeepAt): `kept` is of a `Removed<K, V>`, and `slot` points to a `Slot<K, V>` that
/// the caller owns and gives up.
unsafe fn keep_at<K, V>(kept: &mut Kept, slot: NonNull<u8>, cause: RemovalCause) {
    // SAFETY: the caller's promise: the entry is moved out once, here.
    let slot = unsafe { slot.cast::<Slot<K, V>>().read() };
    Removed::<K, V>::keep(kept, slot.key, slot.value, cause);
}

/// An entry being inserted, laid out as the slot it is to take: written by
/// [`Shard::inserting`], then owned by the [`Typed`] made with it until settled (moved into the
/// slab, handed to the listener, or dropped).
#[repr(transparent)]
pub(crate) struct NewEntry<K, V>(std::mem::ManuallyDrop<Slot<K, V>>);

impl<K, V> NewEntry<K, V> {
    /// The entry, laid out as its `Slot<K, V>`, to give up to a [`Typed`] ([`Typed::of`]).
    #[allow(
        clippy::ptr_as_ptr,
        clippy::ref_as_ptr,
        reason = "casts: `from` and `cast` would be compiled for each type in a debug build"
    )]
    pub(crate) fn given(&mut self) -> NonNull<u8> {
        // A `NewEntry` is its `Slot` (`repr(transparent)`, as `ManuallyDrop` is).
        // SAFETY: a reference is not null.
        unsafe { NonNull::new_unchecked(self as *mut Self as *mut u8) }
    }

    /// `key` and `value`, to be inserted: owned from now on by the [`Typed`] that
    /// [`Shard::inserting`] makes of this, and dropped (if ever) by it alone.
    pub(crate) const fn new(key: K, value: V) -> Self {
        Self(std::mem::ManuallyDrop::new(Slot {
            // A constant: no call that could unwind with the key and value to drop.
            meta: const { Meta::empty() },
            key,
            value,
        }))
    }
}

/// A shard's typed side as [`Entries`], without its types: the entry being inserted, if any, as
/// a place laid out as its slot, the hasher of the keys when the operation needs one, and the
/// shard's [`SlotType`]. Made by [`Shard::entries`] or [`Shard::inserting`], and handed only the
/// places and parts of that `Shard<K, V>`; compiled once.
///
/// Invariant: `new`, while `Some`, points to a `Slot<K, V>` of the shard's types, owned by this
/// `Typed` (moved out or dropped exactly once: by `settle`, or on drop if never settled).
pub(crate) struct Typed<'a> {
    ty: &'static SlotType,
    /// The hasher of the keys, a `S` of `ty` (`TypeOf<K, V, S>`), if the operation hashes.
    hasher: Option<NonNull<()>>,
    new: Option<NonNull<u8>>,
    /// Where the entry taken next goes instead of to the listener or its drop: a place for a
    /// `Slot<K, V>` of the shard's types, owned by the caller (see [`Shard::take`]); `None` once
    /// filled.
    out: Option<NonNull<u8>>,
    /// Borrows the hasher and the entry's place.
    _borrows: PhantomData<&'a mut ()>,
}

impl<'a> Typed<'a> {
    /// The typed side of a shard whose entries `ty` describes, hashing keys by `hasher` if
    /// given, bringing the entry at `new` if any.
    ///
    /// # Safety
    ///
    /// The shard is a `Shard<K, V>` and `ty` is `TypeOf::<K, V, S>::TYPE`; `new`, if any, is a
    /// place holding a `Slot<K, V>` borrowed for `'a` ([`NewEntry::given`], or
    /// [`SlotType::fill`]'s), which the `Typed` owns from now on.
    pub(crate) unsafe fn of<S>(
        ty: &'static SlotType,
        hasher: Option<&'a S>,
        new: Option<NonNull<u8>>,
    ) -> Self {
        Self {
            ty,
            hasher: hasher.map(|hasher| NonNull::from(hasher).cast()),
            new,
            out: None,
            _borrows: PhantomData,
        }
    }

    /// The value of the entry being inserted, if any (not yet settled): a pointer to a `V` of
    /// the shard's types.
    pub(crate) fn value(&self) -> Option<NonNull<u8>> {
        // SAFETY: within the `Slot<K, V>` at `new`, at its value's offset.
        self.new.map(|new| unsafe { new.add(self.ty.value_at) })
    }

    /// Hands the entry at `entry` to the shard's listener as `cause` (by `removed`, the
    /// shard's), or drops it if nobody listens.
    ///
    /// # Safety
    ///
    /// `entry` points to a `Slot<K, V>` of this shard's types, owned by the caller and given up.
    unsafe fn give(&self, removed: &mut RawRemoved, entry: NonNull<u8>, cause: RemovalCause) {
        // SAFETY: `removed` is this shard's, of its types (`Typed` is handed only the parts of
        // its `Shard<K, V>`), and `entry` is given up, by the caller's promise.
        if !unsafe { removed.give(entry, cause) }
            && let Some(drop) = self.ty.drop
        {
            // SAFETY: not kept, so still owned: dropped once, here, by its type's drop.
            unsafe { drop(entry.as_ptr()) };
        }
    }
}

impl Drop for Typed<'_> {
    /// Drops an entry that was never settled (a shard of capacity 0, a panic meanwhile).
    fn drop(&mut self) {
        if let Some(new) = self.new.take()
            && let Some(drop) = self.ty.drop
        {
            // SAFETY: owned, and never settled (see the invariant on `Typed`).
            unsafe { drop(new.as_ptr()) };
        }
    }
}

impl Entries for Typed<'_> {
    fn hash(&self, slot: NonNull<u8>) -> u64 {
        let hasher = self.hasher.expect("a hasher for operations that evict");
        // SAFETY: `ty.hash` is `hash_at` of this shard's types and of the hasher's type (both
        // set by `Shard::entries` or `Shard::inserting`), the hasher borrowed for this `Typed`'s
        // life; `slot` is a held place of the shard, a `Slot<K, V>`.
        unsafe { (self.ty.hash)(hasher, slot) }
    }

    fn weigh(&self, weighing: Weighing, slot: Option<NonNull<u8>>) -> u64 {
        let slot = slot.or(self.new).expect("an entry being inserted");
        // SAFETY: the shard's weighing is of its types (`Shard::weigh`), and `slot` is a held
        // place of the shard or the entry being inserted, both `Slot<K, V>`s.
        unsafe { (weighing.at)(weighing.weigher, slot) }
    }

    fn take(&mut self, removed: &mut RawRemoved, slot: NonNull<u8>, cause: RemovalCause) -> u8 {
        // SAFETY: a place of a `Slot<K, V>` just vacated, which starts with its `Meta`.
        let uses = unsafe { slot.cast::<Meta>().as_ref() }
            .uses
            .load(Ordering::Relaxed);
        if let Some(out) = self.out.take() {
            // SAFETY: the vacated entry, the caller's to give up, moves whole to the place for a
            // `Slot<K, V>` set by `Shard::take`, apart from the slab.
            unsafe { std::ptr::copy_nonoverlapping(slot.as_ptr(), out.as_ptr(), self.ty.size) };
            return uses;
        }
        // SAFETY: the vacated entry is the caller's to give up, once, here.
        unsafe { self.give(removed, slot, cause) };
        uses
    }

    fn settle(&mut self, removed: &mut RawRemoved, new: Settle) {
        let entry = self.new.take().expect("an entry being inserted");
        let cause = match new {
            Settle::Replace(slot, cause) => {
                let (at, size) = (self.ty.value_at, self.ty.value_size);
                // SAFETY: two distinct `Slot<K, V>`s (a held place, which the machinery holds
                // exclusively, and the entry being inserted): their values swap bytes, so the
                // held slot has the new value and `entry` the new key with the old value.
                unsafe {
                    std::ptr::swap_nonoverlapping(
                        slot.as_ptr().add(at),
                        entry.as_ptr().add(at),
                        size,
                    );
                }
                cause
            }
            Settle::Decline => RemovalCause::Evicted,
            Settle::Place(slot) => {
                // SAFETY: a new place, with room for a `Slot<K, V>` (the slab's layout), apart
                // from the entry being inserted; the entry moves there whole (its `meta` is the
                // machinery's to write after).
                unsafe {
                    std::ptr::copy_nonoverlapping(entry.as_ptr(), slot.as_ptr(), self.ty.size);
                }
                return;
            }
        };
        // SAFETY: `entry` was this `Typed`'s, taken out of `new` above.
        unsafe { self.give(removed, entry, cause) };
    }

    fn is_new(&self, slot: NonNull<u8>) -> bool {
        let entry = self.new.expect("an entry being inserted");
        let at = self.ty.key_at;
        // SAFETY: `key_ops` and `key_at` of this shard's types; `slot` a held place and `entry`
        // the entry being inserted, both `Slot<K, V>`s.
        unsafe {
            erased::eq(
                self.ty.key_ops,
                entry.as_ptr().add(at).cast(),
                slot.as_ptr().add(at).cast(),
            )
        }
    }
}

/// The hasher type of operations that hash no key (removals, purges); the same type as the
/// stores', so that they share its vtable.
type NoHasher = super::memory::StoreHasher;

/// The shard's machinery at work on one write: compiled once, not per key and value types.
struct Ops<'a> {
    core: &'a mut Core,
    index: &'a mut Index,
    entries: Held<'a>,
}

/// Puts a number popped off `ring` back at its front when dropped (see [`Ops::popped`]); the pop
/// left room, so this does not allocate while unwinding.
struct Requeue<'a> {
    ring: &'a mut VecDeque<u32>,
    at: u32,
}

impl Drop for Requeue<'_> {
    fn drop(&mut self) {
        self.ring.push_front(self.at);
    }
}

/// What [`Shard::find_cold`] looks for, by key `K`: a lookup's key, or the owned key of an
/// insert (whose key type need not be a lookup's).
pub(crate) trait Sought<K> {
    fn is(&self, key: &K) -> bool;
}

impl<L: Lookup> Sought<L::Key> for L {
    #[inline]
    fn is(&self, key: &L::Key) -> bool {
        self.matches(key)
    }
}

/// A key sought in a shard, compared with the key of the entry at a place of its slab: all that
/// the finds off the hit path need of the key and value types ([`RawShard::find`]).
pub(crate) trait SlotKey {
    /// Whether the entry at `slot`, a held place of the shard's slab, has this key.
    fn is(&self, slot: NonNull<u8>) -> bool;
}

/// A [`Sought`] key among entries of `Slot<K, V>`, as a [`SlotKey`].
pub(crate) struct KeyIn<'a, K, V, Q> {
    sought: &'a Q,
    _slots: PhantomData<fn(&Slot<K, V>)>,
}

impl<K, V, Q: Sought<K>> SlotKey for KeyIn<'_, K, V, Q> {
    #[allow(
        clippy::ptr_as_ptr,
        reason = "a cast: `cast` and `as_ref` would be compiled for each type in a debug build"
    )]
    fn is(&self, slot: NonNull<u8>) -> bool {
        // SAFETY: a `KeyIn` is made by the `Shard<K, V>` it searches (`Shard::key`), whose held
        // places are `Slot<K, V>`s.
        self.sought
            .is(&unsafe { &*(slot.as_ptr() as *const Slot<K, V>) }.key)
    }
}

/// A [`SlotKey`] as the index asks for it, by the number of its slot.
struct InSlab<'a> {
    slab: &'a RawSlab,
    key: &'a dyn SlotKey,
}

impl index::Sought for InSlab<'_> {
    fn is(&self, number: u32) -> bool {
        (self.slab.get(number)).is_some_and(|slot| self.key.is(slot))
    }
}

/// How a read off the hit path treats the entry it finds ([`RawShard::look`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// A hit: the entry is marked used.
    Get,
    /// A hit that also makes the caller the one to refresh the entry, when it is due.
    Renewing,
    /// Not a use: the entry is left unmarked.
    Peek,
    /// A refresh of the entry failed: a later caller may try again. Nothing is read.
    ReleaseRefresh,
}

/// What [`RawShard::look`] saw of the entry it found.
#[derive(Clone, Copy, Default)]
pub(crate) struct Seen {
    /// When the entry is gone for good (its time to live and the grace); 0 for never.
    pub(crate) end: u64,
    /// Whether this caller has become the one to refresh it ([`Look::Renewing`]).
    pub(crate) refresh: bool,
    /// Whether the read renewed its time to live (time to idle; set by the store).
    pub(crate) renewed: bool,
}

impl RawShard {
    /// The number and the place of the entry `key` names: the probe for every find off the hit
    /// path, compiled once.
    fn find(&self, hash: u64, key: &dyn SlotKey) -> Option<(u32, NonNull<u8>)> {
        let at = self.index.find_dyn(
            hash,
            &InSlab {
                slab: &self.slab,
                key,
            },
        )?;
        Some((at, self.slab.get(at)?))
    }

    /// The stamps and use count of the entry at `slot`, a held place of this shard's slab.
    #[allow(
        clippy::unused_self,
        reason = "ties the reference to the borrow of the shard"
    )]
    fn meta_at(&self, slot: NonNull<u8>) -> &Meta {
        // SAFETY: a held place is a `Slot`, which starts with its `Meta`; it stays held while the
        // shard is borrowed.
        unsafe { slot.cast::<Meta>().as_ref() }
    }

    /// Finds the entry `key` names, unless it expired for good (`before(deadline)`: whether
    /// time is still before `deadline`, asked only of an entry that expires), and treats it as
    /// `look` says; `found` is called with its place, under the caller's lock, unless `look` is
    /// [`Look::ReleaseRefresh`]. Every read off the hit path, compiled once.
    pub(crate) fn look(
        &self,
        hash: u64,
        key: &dyn SlotKey,
        look: Look,
        before: impl Fn(u64) -> bool,
        found: &mut dyn FnMut(NonNull<u8>),
    ) -> Option<Seen> {
        let (_, slot) = self.find(hash, key)?;
        let meta = self.meta_at(slot);
        if look == Look::ReleaseRefresh {
            meta.refreshing.store(false, Ordering::Release);
            return Some(Seen::default());
        }
        let end = if meta.expires == 0 {
            0
        } else {
            meta.end(self.renewal.grace)
        };
        if end != 0 && !before(end) {
            return None;
        }
        if look != Look::Peek {
            used(meta, self.cap);
        }
        found(slot);
        let refresh = look == Look::Renewing && meta.refresh_due(&before) && meta.claim_refresh();
        Some(Seen {
            end,
            refresh,
            renewed: false,
        })
    }

    /// Moves the expiry of the entry `key` names to `expires` (time to idle: a hit renews it);
    /// its old expiry item then names another due time and is dropped when it comes. An entry
    /// with a time to live of its own keeps it: the hit read it, or one it replaced.
    pub(crate) fn renew(&mut self, hash: u64, key: &dyn SlotKey, expires: u64) {
        let Some((at, slot)) = self.find(hash, key) else {
            return;
        };
        // SAFETY: as in `meta`; `&mut self` makes it the only reference.
        let meta = unsafe { slot.cast::<Meta>().as_mut() };
        if meta.has_own_ttl() {
            return;
        }
        let stamp = Stamp {
            expires,
            refresh_at: 0,
            own: false,
        };
        meta.stamp(stamp);
        self.core.expiry.push(at, self.core.gone_at(stamp));
    }
}

/// Marks the entry of `meta` used: its count goes up while it is below `cap`.
#[inline]
fn used(meta: &Meta, cap: u8) {
    // Write only while the count is below the cap: a warm entry's cache line stays shared
    // between readers. Two readers may both write the same count; one hit is then lost.
    let uses = meta.uses.load(Ordering::Relaxed);
    if uses & USES < cap {
        meta.uses.store(uses + 1, Ordering::Relaxed);
    }
}

impl<K, V> Shard<K, V> {
    pub(crate) fn new(capacity: usize, renewal: Renewal, policy: Policy) -> Self {
        let raw = RawShard::new(capacity, renewal, policy, Self::KIND);
        // SAFETY: `raw` was built for this shard's slots (`kind`).
        unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(raw)) }
    }

    /// What [`RawShard::new`] needs to know of this shard's entries.
    pub(crate) const KIND: SlabKind = {
        let () = Self::LAID_OUT_AS_RAW;
        Slab::<Slot<K, V>>::KIND
    };

    /// A `Shard` and a [`RawShard`] have one size and alignment (their fields match, see
    /// `RawShard`): checked wherever one is taken for the other.
    const LAID_OUT_AS_RAW: () = assert!(
        size_of::<Self>() == size_of::<RawShard>() && align_of::<Self>() == align_of::<RawShard>()
    );

    /// Weighs entries with `weigher` and keeps their total within `budget` (`u64::MAX`: only
    /// weighs). Set on a new shard; entries held before are dropped.
    pub(crate) fn weigh(&mut self, weigher: Weigher<K, V>, budget: u64) {
        drop(self.take_all());
        self.weigher = Some(Weighing {
            // SAFETY: function pointers of any signature have one layout; read back as a
            // `Weigher<K, V>` by `weigh_at::<K, V>` only.
            weigher: unsafe { std::mem::transmute::<Weigher<K, V>, fn()>(weigher) },
            at: weigh_at::<K, V>,
        });
        self.core.weighed = true;
        self.core.weight = Tally::new(budget);
        self.core.ordered |= budget != u64::MAX;
    }

    /// Collects what leaves the shard for a listener, to be taken by [`take_removed`](Self::take_removed).
    pub(crate) fn listen(&mut self) {
        self.removed.collect(keep_at::<K, V>);
    }

    /// What left the shard since the last call (with a listener; otherwise nothing is kept).
    pub(crate) fn take_removed(&mut self) -> Vec<(K, V, RemovalCause)> {
        self.removed.take()
    }

    /// The weight of the entries held (0 without a weigher).
    pub(crate) fn weight(&self) -> u64 {
        self.core.weight.total()
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The keys of entries that have not expired for good.
    pub(crate) fn keys(&self, now: u64) -> impl Iterator<Item = &K> {
        let grace = self.renewal.grace;
        self.slab
            .iter()
            .filter(move |slot| !slot.meta.is_expired(now, grace))
            .map(|slot| &slot.key)
    }

    pub(crate) fn counts(&self) -> Counts {
        self.core.counts
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// Empties the shard, handing back the entries so that the caller drops them after releasing
    /// the shard (their `Drop` may be user code).
    #[must_use = "drop the entries outside the shard's write guard"]
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = (K, V)> + use<K, V> {
        self.core.weight.clear();
        self.core.clear();
        self.index = Index::new();
        std::mem::replace(&mut self.slab, Slab::new(self.core.capacity))
            .into_iter()
            .map(|slot| (slot.key, slot.value))
    }

    /// This shard's typed side for its machinery's writes that bring no entry (removals,
    /// purges): `hasher` for operations that hash keys.
    pub(crate) fn entries<S: BuildHasher>(hasher: Option<&S>) -> Typed<'_>
    where
        K: Hash + Eq + Clone,
    {
        // SAFETY: the table of this shard's types; no entry.
        unsafe { Typed::of(TypeOf::<K, V, S>::TYPE, hasher, None) }
    }

    /// This shard's typed side for [`RawShard::insert`] of the entry in `place`, which the
    /// `Typed` owns from now on; `hasher` hashes keys.
    pub(crate) fn inserting<'a, S: BuildHasher>(
        hasher: &'a S,
        place: &'a mut NewEntry<K, V>,
    ) -> Typed<'a>
    where
        K: Hash + Eq + Clone,
    {
        // SAFETY: the table of this shard's types, and an entry of them, given up.
        unsafe { Typed::of(TypeOf::<K, V, S>::TYPE, Some(hasher), Some(place.given())) }
    }

    /// The shard without its types, to write.
    fn raw_mut(&mut self) -> &mut RawShard {
        let () = Self::LAID_OUT_AS_RAW;
        // SAFETY: as in `raw`; `&mut self` makes it the only reference, and `RawShard`'s code
        // writes the typed parts only through this shard's `Entries` (`entries`).
        unsafe { &mut *std::ptr::from_mut(self).cast::<RawShard>() }
    }

    /// The shard `raw` is.
    ///
    /// # Safety
    ///
    /// `raw` was built for this shard's slots ([`kind`](Self::kind)).
    pub(crate) const unsafe fn of_raw_mut(raw: &mut RawShard) -> &mut Self {
        let () = Self::LAID_OUT_AS_RAW;
        // SAFETY: the caller's promise; laid out alike (see `RawShard` and `LAID_OUT_AS_RAW`).
        unsafe { &mut *std::ptr::from_mut(raw).cast::<Self>() }
    }

    /// The number and the entry of the key that `is`.
    #[inline]
    fn find(&self, hash: u64, is: impl Fn(&K) -> bool) -> Option<(u32, &Slot<K, V>)> {
        let slab = &self.slab;
        // SAFETY: the index names only held entries (see `index`); unchecked, the hit path
        // saves a bitmap load.
        let at = self
            .index
            .find(hash, |at| is(&unsafe { slab.get_unchecked(at) }.key))?;
        // SAFETY: as above.
        Some((at, unsafe { slab.get_unchecked(at) }))
    }

    /// [`find`](Self::find) off the hit path: one probe loop, compiled once, the key compared
    /// through a pointer ([`RawShard::find`]).
    #[inline]
    fn find_cold<Q: Sought<K>>(&self, hash: u64, sought: &Q) -> Option<(u32, &Slot<K, V>)> {
        let (at, slot) = self.raw().find(hash, &Self::key(sought))?;
        // SAFETY: a held place of this shard's slab, a `Slot<K, V>`, borrowed with the shard.
        Some((at, unsafe { slot.cast::<Slot<K, V>>().as_ref() }))
    }

    /// The shard without its types, for the code compiled once.
    fn raw(&self) -> &RawShard {
        let () = Self::LAID_OUT_AS_RAW;
        // SAFETY: a `RawShard` is laid out as a `Shard` (see `RawShard` and `LAID_OUT_AS_RAW`),
        // and is only read here.
        unsafe { &*std::ptr::from_ref(self).cast::<RawShard>() }
    }

    /// `sought` as the code compiled once compares it with this shard's entries.
    pub(crate) fn key<Q: Sought<K>>(sought: &Q) -> KeyIn<'_, K, V, Q> {
        KeyIn {
            sought,
            _slots: PhantomData,
        }
    }

    /// The live value for `key`, marking it recently used. Takes `&self`: runs under a read lock.
    /// `before(deadline)` tells whether time is still before `deadline`; it is asked only about an
    /// entry with a time to live: a store without one never calls the clock, and its hit path
    /// keeps no time in a register.
    #[inline]
    pub(crate) fn get<L>(&self, hash: u64, key: &L, before: impl FnOnce(u64) -> bool) -> Option<&V>
    where
        L: Lookup<Key = K>,
    {
        self.live(hash, key, before).map(|slot| &slot.value)
    }

    /// Like [`get`](Self::get) for an entry that never expires; `None` for one with a time to
    /// live as for a miss. Needing no clock, it makes no call (see `MemoryStore::get_untimed`).
    #[inline]
    pub(crate) fn get_untimed<L>(&self, hash: u64, key: &L) -> Option<&V>
    where
        L: Lookup<Key = K>,
    {
        let (_, slot) = self.find(hash, |k| key.matches(k))?;
        if slot.meta.expires != 0 {
            return None;
        }
        Some(&self.used(slot).value)
    }

    /// The entry for `key` unless it expired for good, marked recently used.
    #[inline]
    fn live<L>(&self, hash: u64, key: &L, before: impl FnOnce(u64) -> bool) -> Option<&Slot<K, V>>
    where
        L: Lookup<Key = K>,
    {
        let (_, slot) = self.find(hash, |k| key.matches(k))?;
        if slot.meta.expires != 0 && !before(slot.meta.end(self.renewal.grace)) {
            return None;
        }
        Some(self.used(slot))
    }

    /// `slot`, marked recently used.
    #[inline]
    fn used<'a>(&self, slot: &'a Slot<K, V>) -> &'a Slot<K, V> {
        used(&slot.meta, self.cap);
        slot
    }

    /// [`RawShard::insert`] of `key` and `value`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the insert and the climber's share"
    )]
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hasher: &S,
        hash: u64,
        key: K,
        value: V,
        stamp: Stamp,
        now: u64,
        share: u32,
    ) -> climb::Batch
    where
        K: Hash + Eq + Clone,
    {
        let mut place = NewEntry::new(key, value);
        let mut typed = Self::inserting(hasher, &mut place);
        self.raw_mut().insert(&mut typed, hash, stamp, now, share)
    }

    /// Removes `key`'s entry; `true` if there was one.
    #[cfg(test)]
    pub(crate) fn remove<L>(&mut self, hash: u64, key: &L) -> bool
    where
        L: Lookup<Key = K>,
        K: Hash + Eq + Clone,
    {
        let Some((at, _)) = self.find_cold(hash, key) else {
            return false;
        };
        let mut typed = Self::entries(None::<&NoHasher>);
        self.raw_mut().ops(&mut typed, |mut ops| {
            ops.take_out(hash, at, RemovalCause::Invalidated)
        })
    }

    /// Takes `key`'s entry out and hands it back, with whether it was live (`before` as for
    /// [`get`](Self::get)): not to the listener nor dropped, so that the caller clones or drops
    /// it, user code, after releasing the shard.
    pub(crate) fn take<L>(
        &mut self,
        hash: u64,
        key: &L,
        before: &dyn Fn(u64) -> bool,
    ) -> Option<(K, V, bool)>
    where
        L: Lookup<Key = K>,
        K: Hash + Eq + Clone,
    {
        let (at, slot) = self.find_cold(hash, key)?;
        let live = slot.meta.expires == 0 || before(slot.meta.end(self.renewal.grace));
        let mut out = std::mem::MaybeUninit::<Slot<K, V>>::uninit();
        let mut typed = Self::entries(None::<&NoHasher>);
        typed.out = Some(NonNull::from(&mut out).cast());
        self.raw_mut().ops(&mut typed, |mut ops| {
            ops.take_out(hash, at, RemovalCause::Invalidated)
        });
        if typed.out.is_some() {
            return None;
        }
        // SAFETY: `Typed::take` moved the entry into `out`, the only place that owns it now.
        let slot = unsafe { out.assume_init() };
        Some((slot.key, slot.value, live))
    }

    /// [`RawShard::purge_expired`].
    #[cfg(test)]
    pub(crate) fn purge_expired(&mut self, now: u64) -> usize
    where
        K: Hash + Eq + Clone,
    {
        let mut typed = Self::entries(None::<&NoHasher>);
        self.raw_mut().purge_expired(&mut typed, now)
    }
}

impl RawShard {
    /// Runs `work` on the shard's machinery, with `typed`, the typed side of this shard.
    #[inline]
    fn ops<R>(&mut self, typed: &mut dyn Entries, work: impl FnOnce(Ops<'_>) -> R) -> R {
        work(Ops {
            core: &mut self.core,
            index: &mut self.index,
            entries: Held {
                slab: &mut self.slab,
                removed: &mut self.removed,
                weigher: self.weigher,
                typed,
            },
        })
    }

    /// Inserts or replaces the entry `typed` (this shard's typed side) brings, making room first
    /// when the shard is full (by count or by weight). The default policy may decline to store
    /// a new key (see `auto.rs`), and an entry heavier than the shard's share of `max_weight` is
    /// never stored; both count as evictions. `share` is the small queue's share of the shard
    /// (the store's climber's, `climb.rs`); the misses to report to the climber come back (0 but
    /// once a batch).
    pub(crate) fn insert(
        &mut self,
        typed: &mut dyn Entries,
        hash: u64,
        stamp: Stamp,
        now: u64,
        share: u32,
    ) -> climb::Batch {
        if self.core.capacity == 0 {
            return climb::Batch::default();
        }
        let report = self.core.climb(share);
        let found = self.find(hash, &NewKey(typed)).map(|(at, _)| at);
        self.ops(typed, |mut ops| ops.insert(hash, found, stamp, now));
        report
    }

    /// Removes every expired entry and returns how many left; `typed` is this shard's typed
    /// side.
    pub(crate) fn purge_expired(&mut self, typed: &mut dyn Entries, now: u64) -> usize {
        self.ops(typed, |mut ops| ops.purge_expired(now))
    }
}

impl Ops<'_> {
    /// Inserts the entry being inserted (see [`Entries`]) under `hash`, in place of entry
    /// `found` of the same key if there is one, making room first when the shard is full.
    fn insert(&mut self, hash: u64, found: Option<u32>, stamp: Stamp, now: u64) {
        self.core.expiring |= stamp.expires != 0;
        let weight = if self.core.weighed {
            self.entries.weigh(None)
        } else {
            None
        };
        if let Some(at) = found {
            // An old value past its time to live (and its `stale` grace) is told and counted as
            // expired, as moka tells it, not as replaced. Counted once it is out: the weigher,
            // user code, runs first.
            let expired = self.expired_at(at, now);
            let cause = if expired {
                RemovalCause::Expired
            } else {
                RemovalCause::Replaced
            };
            if self.replaces(at, weight) {
                self.entries.replace(at, cause);
                self.core.counts.expired += u64::from(expired);
                let meta = self.entries.meta_mut(at).expect("an entry just found");
                meta.stamp(stamp);
                *meta.refreshing.get_mut() = false;
                self.core.expiry.push(at, self.core.gone_at(stamp));
                return;
            }
            // The new value does not fit beside the others in place: the old one leaves, and the
            // new one comes in as a new entry, making room by the policy.
            self.take_out(hash, at, cause);
            self.core.counts.expired += u64::from(expired);
        }
        let Some(uses) = self.make_room(hash, weight, now) else {
            // Declined, or heavier than the whole shard may hold: counted as evicted on
            // arrival, as Caffeine and moka count a rejected candidate, so that every stored
            // key is held, evicted, expired or removed.
            self.core.counts.evicted += 1;
            self.entries.decline();
            return;
        };
        if let Some(weight) = weight {
            self.core.weight.add(weight);
        }
        let at = self.entries.place(stamp, uses);
        self.placed(hash, at, uses, stamp);
    }

    /// Whether a new value of weight `weight` may take the place of entry `at`'s (weighed
    /// afresh, as on removal: the slot keeps no weight of its own); if so, its weight is swapped
    /// in.
    fn replaces(&mut self, at: u32, weight: Option<u64>) -> bool {
        let old = weight.and_then(|_| self.entries.weigh(Some(at)));
        let Some((new, old)) = weight.zip(old) else {
            return true;
        };
        if !self.core.weight.fits_instead(old, new) {
            return false;
        }
        self.core.weight.swap(old, new);
        true
    }

    /// The weight of entry `at`, if entries are weighed: the weigher is user code, asked before
    /// the entry is touched, so that one that panics leaves the entry whole.
    fn weight_of(&self, at: u32) -> Option<u64> {
        if self.core.weighed {
            self.entries.weigh(Some(at))
        } else {
            None
        }
    }

    /// Takes entry `at`, of weight `weight` ([`weight_of`](Self::weight_of)), out of the slab
    /// (see [`Entries::take`]), its weight out of the total and, in a bounded shard, out of the
    /// small queue's count; `false` if nothing is held at `at`. The books are kept before the
    /// entry is dropped, whose `Drop` may panic.
    fn take_entry(
        &mut self,
        at: u32,
        weight: Option<u64>,
        vacate: bool,
        cause: RemovalCause,
    ) -> bool {
        let Some(meta) = self.entries.meta(at) else {
            return false;
        };
        if self.core.ordered && meta.uses.load(Ordering::Relaxed) & MAIN == 0 {
            self.core.small_len = self.core.small_len.saturating_sub(1);
        }
        if let Some(weight) = weight {
            self.core.weight.sub(weight);
        }
        self.entries.take(at, vacate, cause).is_some()
    }

    /// Makes room for a new entry of weight `weight` (if weighed) under `hash`; the new entry's
    /// `uses` byte (which ring it joins), or `None` when it is not to be stored: the policy
    /// declined it, or it weighs more than the whole shard may hold.
    fn make_room(&mut self, hash: u64, weight: Option<u64>, now: u64) -> Option<u8> {
        if weight.is_some_and(|weight| weight > self.core.weight.budget()) {
            // Heavier than the whole shard may hold: not stored, like a declined key.
            return None;
        }
        if self.core.expiring {
            // Expired entries leave before any live entry is evicted, and whether or not anyone
            // reads them.
            self.expire_due(now);
        }
        if !self.core.ordered {
            return Some(0);
        }
        if let Some(weight) = weight {
            while !self.core.weight.fits(weight) && self.entries.len() > 0 {
                let held = self.len();
                self.evict_one(now);
                if self.len() == held {
                    // Nothing could leave: the new entry does not come in (see below).
                    return None;
                }
            }
            if self.entries.len() == 0 {
                // Nothing left to weigh: forget any drift of a weigher that was not
                // deterministic after all.
                self.core.weight.clear();
            }
        }
        let uses = match self.core.policy {
            Policy::Auto => self.admit_auto(hash, now),
            Policy::Lru => Some(self.admit_clock(now)),
            Policy::Lfu => Some(self.admit_lfu(now)),
            Policy::Fifo => Some(self.admit_fifo(now)),
        };
        // No room was made (the rings lost track of the entries held, which only a bug could
        // do): the new entry does not come in, rather than go past the bound.
        uses.filter(|_| self.len() < self.core.capacity)
    }

    /// Entry `at`, just put in the slab under `hash`, joins the index, the expiry heap and its
    /// ring.
    fn placed(&mut self, hash: u64, at: u32, uses: u8, stamp: Stamp) {
        self.core.expiry.push(at, self.core.gone_at(stamp));
        let entries = &self.entries;
        self.index.insert(hash, at, &|at| entries.hash(at));
        if self.core.ordered {
            self.enqueue(at, uses);
        }
    }

    /// Frees one place by the policy's order, for an entry that does not fit by weight.
    fn evict_one(&mut self, now: u64) {
        match self.core.policy {
            Policy::Auto => {
                if self.core.capacity == usize::MAX {
                    // Bounded by weight alone: the small queue's share follows the entries held.
                    self.core.small_target = auto::small_target(self.entries.len());
                }
                self.evict_auto(now);
            }
            Policy::Lru => self.evict_clock(now),
            Policy::Lfu => self.evict_lfu(now),
            Policy::Fifo => self.evict_fifo(now),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Puts a new entry's number at the back of its ring.
    fn enqueue(&mut self, at: u32, uses: u8) {
        let core = &mut *self.core;
        let (ring, live) = if uses & MAIN != 0 {
            (
                &mut core.main,
                self.entries.len().saturating_sub(core.small_len),
            )
        } else {
            core.small_len += 1;
            (&mut core.small, core.small_len)
        };
        if ring.len() == ring.capacity() {
            // Grow by a quarter, not by doubling: the ring is 4 bytes of every entry.
            // A ring holds at most the shard's bound, plus vacated numbers up to a fifth more.
            let most = core.capacity.saturating_add(core.capacity / 4 + 32);
            let want = (ring.len() + live / 4 + 16).min(most);
            ring.reserve_exact(want.saturating_sub(ring.len()).max(1));
        }
        ring.push_back(at);
    }

    /// Pops the number off the front of the `main` (or small) ring.
    fn pop(&mut self, main: bool) -> Option<u32> {
        let core = &mut *self.core;
        let ring = if main {
            &mut core.main
        } else {
            &mut core.small
        };
        while let Some(at) = ring.pop_front() {
            if let Some(meta) = self.entries.meta(at) {
                debug_assert_eq!(
                    meta.uses.load(Ordering::Relaxed) & MAIN != 0,
                    main,
                    "a ring names only entries of its own"
                );
                return Some(at);
            }
            // A vacated number: free for the next entry now that no ring names it.
            self.entries.release(at);
            core.vacated = core.vacated.saturating_sub(1);
        }
        None
    }

    /// Lets the rings' vacated numbers go once they make up a fifth of the rings, so that a shard
    /// that seldom evicts does not grow with its removals.
    fn compact_vacated(&mut self) {
        if self.core.vacated <= self.len() / 4 + 16 {
            return;
        }
        self.release_vacated();
    }

    /// Drops every vacated number from the rings and frees it for new entries.
    fn release_vacated(&mut self) {
        let entries = &mut self.entries;
        let core = &mut *self.core;
        for ring in [&mut core.main, &mut core.small] {
            ring.retain(|&at| {
                let held = entries.meta(at).is_some();
                if !held {
                    entries.release(at);
                }
                held
            });
        }
        core.vacated = 0;
    }

    /// Like [`pop`](Self::pop), with the hash of the entry's key.
    fn pop_hashed(&mut self, main: bool) -> Option<(u64, u32)> {
        let at = self.pop(main)?;
        Some((self.popped(at, |entries| entries.hash(at)), at))
    }

    /// Runs `work`, user code (a key's `Hash`, the weigher), on entry `at`, just popped off its
    /// ring: if it panics, the number goes back to the front of the ring, where the policy finds
    /// the entry, still held and indexed, again.
    fn popped<R>(&mut self, at: u32, work: impl FnOnce(&Held<'_>) -> R) -> R {
        let main = (self.entries.meta(at))
            .is_some_and(|meta| meta.uses.load(Ordering::Relaxed) & MAIN != 0);
        let core = &mut *self.core;
        let ring = if main {
            &mut core.main
        } else {
            &mut core.small
        };
        let requeue = Requeue { ring, at };
        let done = work(&self.entries);
        std::mem::forget(requeue);
        done
    }

    /// Entry `at`'s stamps and use count (popped since the last change).
    fn meta_mut(&mut self, at: u32) -> &mut Meta {
        self.entries
            .meta_mut(at)
            .expect("an entry popped since the last change")
    }

    /// Entry `at`'s `uses` byte (popped since the last change).
    fn uses_mut(&mut self, at: u32) -> &mut u8 {
        self.meta_mut(at).uses.get_mut()
    }

    /// Whether entry `at` has expired for good.
    fn expired_at(&mut self, at: u32, now: u64) -> bool {
        let grace = self.core.grace;
        self.meta_mut(at).is_expired(now, grace)
    }

    /// Removes entry `at` (popped off its ring), counted as expired or evicted.
    fn drop_slot(&mut self, at: u32, expired: bool) {
        let hash = self.popped(at, |entries| entries.hash(at));
        self.drop_hashed(hash, at, expired);
    }

    /// [`drop_slot`](Self::drop_slot) with the hash of the entry's key known.
    fn drop_hashed(&mut self, hash: u64, at: u32, expired: bool) {
        if self.entries.meta(at).is_none() {
            return;
        }
        let weight = if self.core.weighed {
            self.popped(at, |entries| entries.weigh(Some(at)))
        } else {
            None
        };
        self.unindex(hash, at);
        let cause = if expired {
            self.core.counts.expired += 1;
            RemovalCause::Expired
        } else {
            self.core.counts.evicted += 1;
            RemovalCause::Evicted
        };
        self.take_entry(at, weight, false, cause);
    }

    /// Takes entry `at`'s number out of the index.
    fn unindex(&mut self, hash: u64, at: u32) {
        if !self.index.remove(hash, at) {
            // The key hashes differently than when it was stored (its `Hash` is not
            // deterministic): look for the number everywhere, since it must not outlive its entry.
            self.index.remove_anywhere(at);
        }
    }

    /// Removes the entries whose time has passed, earliest first (`shard/expiry.rs`).
    fn expire_due(&mut self, now: u64) {
        let grace = self.core.grace;
        while let Some((due, at)) = self.core.expiry.peek_due(now) {
            let current = self
                .entries
                .meta(at)
                .filter(|meta| meta.is_due_at(due, grace));
            let Some(meta) = current else {
                // Removed, or restamped since: its entry has another item or none.
                self.core.expiry.pop();
                continue;
            };
            if !meta.is_expired(now, grace) {
                // Due later within this unit.
                break;
            }
            // User code (`Hash`, the weigher) first: if it panics, nothing has changed.
            let (hash, weight) = (self.entries.hash(at), self.weight_of(at));
            self.core.expiry.pop();
            self.unindex(hash, at);
            self.core.counts.expired += 1;
            self.take_vacating(at, weight, RemovalCause::Expired);
        }
        if self.core.expiry.len() > 2 * self.len() + 64 {
            // Items of removed or restamped entries: keep those that stand for an entry's
            // current expiry.
            let entries = &self.entries;
            self.core.expiry.retain(&mut |at, due| {
                entries
                    .meta(at)
                    .is_some_and(|meta| meta.is_due_at(due, grace))
            });
        }
    }

    /// A last resort that keeps the bound if the rings ever lost track of an entry: evicts the
    /// first entry in table order.
    #[cold]
    fn evict_any(&mut self) {
        debug_assert!(false, "every entry has its number in a ring");
        let Some(at) = self.index.iter().next() else {
            return;
        };
        self.index.remove_anywhere(at);
        if self
            .entries
            .take(at, false, RemovalCause::Evicted)
            .is_none()
        {
            return;
        }
        let core = &mut *self.core;
        for ring in [&mut core.main, &mut core.small] {
            ring.retain(|&i| i != at);
        }
        core.counts.evicted += 1;
        let mut small = 0;
        self.entries.each(&mut |meta| {
            if *meta.uses.get_mut() & MAIN == 0 {
                small += 1;
            }
        });
        self.core.small_len = small;
    }

    /// Takes entry `at`, found under `hash`, out of the table and its ring, as `cause`; `true`
    /// if it was held.
    fn take_out(&mut self, hash: u64, at: u32, cause: RemovalCause) -> bool {
        let weight = self.weight_of(at);
        let removed = self.index.remove(hash, at);
        debug_assert!(removed, "found under this hash a moment ago");
        self.take_vacating(at, weight, cause)
    }

    /// Takes entry `at`, of weight `weight`, already out of the index, out of the slab, as
    /// `cause`; in a bounded shard its number stays in its ring, vacated (see the module doc).
    /// `true` if it was held.
    fn take_vacating(&mut self, at: u32, weight: Option<u64>, cause: RemovalCause) -> bool {
        let ordered = self.core.ordered;
        if self.entries.meta(at).is_none() {
            return false;
        }
        if ordered {
            self.core.vacated += 1;
        }
        self.take_entry(at, weight, ordered, cause);
        if ordered {
            self.compact_vacated();
        }
        true
    }

    /// Removes every expired entry and returns how many left.
    fn purge_expired(&mut self, now: u64) -> usize {
        let grace = self.core.grace;
        let entries = &self.entries;
        let gone = |at| {
            entries
                .meta(at)
                .is_some_and(|meta| meta.is_expired(now, grace))
        };
        let expired: Vec<u32> = self.index.iter().filter(|&at| gone(at)).collect();
        // The weigher, user code, before anything changes: if it panics, nothing has.
        let weights: Vec<Option<u64>> = expired.iter().map(|&at| self.weight_of(at)).collect();
        let entries = &self.entries;
        self.index.retain(&mut |at| {
            !entries
                .meta(at)
                .is_some_and(|meta| meta.is_expired(now, grace))
        });
        let bounded = self.core.ordered;
        self.core.counts.expired += expired.len() as u64;
        for (&at, weight) in expired.iter().zip(weights) {
            if bounded {
                self.core.vacated += 1;
            }
            self.take_entry(at, weight, bounded, RemovalCause::Expired);
        }
        if !expired.is_empty() && bounded {
            // One pass over the rings frees the purged entries' numbers with any vacated before.
            self.release_vacated();
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately poor hash, so collisions in the table get exercised too.
    #[derive(Default)]
    struct Poor;

    impl BuildHasher for Poor {
        type Hasher = PoorHasher;
        fn build_hasher(&self) -> PoorHasher {
            PoorHasher(0)
        }
    }

    struct PoorHasher(u64);

    impl std::hash::Hasher for PoorHasher {
        fn finish(&self) -> u64 {
            self.0 % 7
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(b));
            }
        }
    }

    /// A good hash with a fixed seed, so that tests are deterministic.
    fn fixed() -> foldhash::fast::FixedState {
        foldhash::fast::FixedState::with_seed(7)
    }

    /// Inserts `k` and returns what left the shard to make room.
    fn put(shard: &mut Shard<u64, u64>, k: u64, expires: u64, now: u64) -> Counts {
        let before = shard.counts();
        shard.insert(
            &fixed(),
            fixed().hash_one(k),
            k,
            k * 10,
            Stamp {
                expires,
                refresh_at: 0,
                own: false,
            },
            now,
            climb::START,
        );
        let after = shard.counts();
        Counts {
            hits: 0,
            evicted: after.evicted - before.evicted,
            expired: after.expired - before.expired,
            errors: 0,
        }
    }

    fn get(shard: &Shard<u64, u64>, k: u64, now: u64) -> Option<u64> {
        shard
            .get(fixed().hash_one(k), &&k, |deadline| now < deadline)
            .copied()
    }

    const NONE: Counts = Counts {
        hits: 0,
        evicted: 0,
        expired: 0,
        errors: 0,
    };

    /// The layout the module doc counts on: the early refresh costs no second 8-byte stamp.
    #[test]
    fn a_u64_entry_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot<u64, u64>>(), 32);
    }

    /// An early refresh falls due exactly when drawn, whatever the lead up to 39 hours.
    #[test]
    fn the_early_refresh_offset_is_exact() {
        let due = |expires, refresh_at, now| {
            let due = |own| {
                Meta::new(
                    Stamp {
                        expires,
                        refresh_at,
                        own,
                    },
                    0,
                )
                .refresh_due(&|deadline| now < deadline)
            };
            assert_eq!(due(false), due(true), "the mark of an own time to live");
            due(false)
        };
        assert!(!due(0, 0, u64::MAX), "never expires");
        assert!(!due(100, 0, 99) && due(100, 0, 100), "no early refresh");
        assert!(!due(100, 60, 59) && due(100, 60, 60));
        assert!(!due(100, 1, 0) && due(100, 1, 1));
        let hours = 3_600_000_000_000_u64;
        let expires = 100 * hours;
        assert!(!due(
            expires,
            expires - 38 * hours - 1,
            expires - 38 * hours - 2
        ));
        assert!(due(
            expires,
            expires - 38 * hours - 1,
            expires - 38 * hours - 1
        ));
        // A longer lead is cut to 2^47 ns.
        assert!(!due(expires, 1, expires - EARLY - 1) && due(expires, 1, expires - EARLY));
    }

    #[test]
    fn keeps_referenced_entries_and_evicts_cold_ones() {
        let mut shard = Shard::new(3, Renewal::default(), Policy::Lru);
        for k in 0..3 {
            assert_eq!(put(&mut shard, k, 0, 0), NONE);
        }
        assert_eq!(get(&shard, 0, 0), Some(0));
        assert_eq!(get(&shard, 2, 0), Some(20));
        assert_eq!(
            put(&mut shard, 3, 0, 0),
            Counts {
                hits: 0,
                evicted: 1,
                expired: 0,
                errors: 0,
            }
        );
        assert_eq!(get(&shard, 1, 0), None, "the one unreferenced entry leaves");
        assert_eq!(shard.len(), 3);
        for k in [0, 2, 3] {
            assert_eq!(get(&shard, k, 0), Some(k * 10));
        }
    }

    #[test]
    fn a_full_lap_of_referenced_entries_still_frees_room() {
        let mut shard = Shard::new(4, Renewal::default(), Policy::Lru);
        for k in 0..4 {
            put(&mut shard, k, 0, 0);
            get(&shard, k, 0);
        }
        assert_eq!(
            put(&mut shard, 9, 0, 0),
            Counts {
                hits: 0,
                evicted: 1,
                expired: 0,
                errors: 0,
            }
        );
        assert_eq!(shard.len(), 4);
        assert_eq!(get(&shard, 9, 0), Some(90));
    }

    #[test]
    fn the_hand_moves_on_so_cold_entries_anywhere_are_evicted() {
        let mut shard = Shard::new(64, Renewal::default(), Policy::Lru);
        for k in 0..64 {
            put(&mut shard, k, 0, 0);
        }
        // Keep re-referencing a hot set; insert a stream of new keys: the hot set survives and
        // every cold original is evicted eventually, wherever it sits in the table.
        for k in 1_000..1_400 {
            for hot in 0..8 {
                get(&shard, hot, 0);
            }
            put(&mut shard, k, 0, 0);
        }
        for hot in 0..8 {
            assert_eq!(get(&shard, hot, 0), Some(hot * 10), "hot key {hot}");
        }
        for cold in 8..64 {
            assert_eq!(get(&shard, cold, 0), None, "cold key {cold}");
        }
    }

    #[test]
    fn expired_entries_are_invisible_and_evicted_first() {
        let mut shard = Shard::new(2, Renewal::default(), Policy::Auto);
        put(&mut shard, 1, 100, 0);
        put(&mut shard, 2, 0, 0);
        assert_eq!(get(&shard, 1, 99), Some(10));
        assert_eq!(get(&shard, 1, 100), None);
        let _ = get(&shard, 2, 100);
        assert_eq!(
            put(&mut shard, 3, 0, 100),
            Counts {
                hits: 0,
                evicted: 0,
                expired: 1,
                errors: 0,
            }
        );
        assert_eq!(get(&shard, 2, 100), Some(20));
        assert_eq!(get(&shard, 3, 100), Some(30));
    }

    #[test]
    fn inserts_sweep_expired_entries_out_of_a_shard_that_is_not_full() {
        let mut shard = Shard::new(usize::MAX, Renewal::default(), Policy::Auto);
        for k in 0..1000 {
            put(&mut shard, k, 50, 0);
        }
        for k in 1000..1200 {
            put(&mut shard, k, 0, 60);
        }
        assert_eq!(shard.counts().expired, 1000);
        assert_eq!(shard.len(), 200);
    }

    #[test]
    fn purge_frees_expired_entries() {
        let mut shard = Shard::new(usize::MAX, Renewal::default(), Policy::Auto);
        for k in 0..1000 {
            put(&mut shard, k, if k % 2 == 0 { 50 } else { 0 }, 0);
        }
        assert_eq!(shard.purge_expired(50), 500);
        assert_eq!(shard.counts().expired, 500);
        assert_eq!(shard.len(), 500);
        for k in 0..1000 {
            assert_eq!(
                get(&shard, k, 50),
                (k % 2 == 1).then_some(k * 10),
                "key {k}"
            );
        }
    }

    #[test]
    fn replace_and_remove() {
        let mut shard = Shard::new(4, Renewal::default(), Policy::Lru);
        put(&mut shard, 1, 0, 0);
        assert_eq!(put(&mut shard, 1, 0, 0), NONE, "nothing leaves on replace");
        shard.insert(
            &fixed(),
            fixed().hash_one(1_u64),
            1,
            99,
            Stamp::default(),
            0,
            climb::START,
        );
        assert_eq!(get(&shard, 1, 0), Some(99));
        assert!(shard.remove(fixed().hash_one(1_u64), &&1));
        assert!(!shard.remove(fixed().hash_one(1_u64), &&1));
        assert_eq!(shard.len(), 0);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut shard = Shard::new(0, Renewal::default(), Policy::Auto);
        put(&mut shard, 1, 0, 0);
        assert_eq!(shard.len(), 0);
    }

    const POLICIES: [Policy; 4] = [Policy::Auto, Policy::Lru, Policy::Lfu, Policy::Fifo];

    /// Runs `requests` as get-or-insert on a shard of `capacity`; the hits.
    fn hits(policy: Policy, capacity: usize, requests: impl IntoIterator<Item = u64>) -> usize {
        let mut shard = Shard::new(capacity, Renewal::default(), policy);
        let mut hits = 0;
        for k in requests {
            if get(&shard, k, 0).is_some() {
                hits += 1;
            } else {
                put(&mut shard, k, 0, 0);
            }
            assert!(shard.len() <= capacity, "{policy:?} over its bound");
        }
        hits
    }

    /// A shard of fewer than 1,000 entries (a store of its own, whose small queue keeps its 3 %)
    /// banks up to 15 uses per entry, a larger one 3 (`auto::cap`).
    #[test]
    fn small_shards_bank_more_uses() {
        for (capacity, banked) in [(100, 15), (999, 15), (1_000, 3), (4_000, 3)] {
            let mut shard = Shard::new(capacity, Renewal::default(), Policy::Auto);
            put(&mut shard, 1, 0, 0);
            for _ in 0..20 {
                assert_eq!(get(&shard, 1, 0), Some(10));
            }
            let (_, slot) = shard.find(fixed().hash_one(1), |k| *k == 1).expect("held");
            let uses = slot.meta.uses.load(Ordering::Relaxed) & USES;
            assert_eq!(uses, banked, "capacity {capacity}");
        }
    }

    /// With only seven distinct hashes, every ring entry stands for several keys: eviction may
    /// pick among them, but the bound holds and no lookup returns another key's value.
    #[test]
    fn colliding_hashes_keep_the_bound_and_the_values() {
        for policy in POLICIES {
            let mut shard = Shard::new(16, Renewal::default(), policy);
            for k in 0..2_000_u64 {
                let key = (k * 7919) % 97;
                match shard.get(Poor.hash_one(key), &&key, |deadline| 0 < deadline) {
                    Some(&v) => assert_eq!(v, key * 10, "{policy:?}"),
                    None => {
                        shard.insert(
                            &Poor,
                            Poor.hash_one(key),
                            key,
                            key * 10,
                            Stamp::default(),
                            0,
                            climb::START,
                        );
                    }
                }
                if k % 13 == 0 {
                    shard.remove(Poor.hash_one(key), &&key);
                }
                assert!(shard.len() <= 16, "{policy:?}");
            }
        }
    }

    /// A hasher that never gives the same hash twice, as a key whose `Hash` is not deterministic.
    #[derive(Default)]
    struct Fickle(std::cell::Cell<u64>);

    impl BuildHasher for Fickle {
        type Hasher = std::hash::DefaultHasher;
        fn build_hasher(&self) -> Self::Hasher {
            self.0.set(self.0.get() + 1);
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hasher::write_u64(&mut hasher, self.0.get());
            hasher
        }
    }

    /// Evicting an entry whose key now hashes elsewhere still takes its number out of the
    /// index, which must name only held entries (hits read them unchecked).
    #[test]
    fn a_hash_that_is_not_deterministic_leaves_no_stale_number() {
        for policy in POLICIES {
            let fickle = Fickle::default();
            let mut shard = Shard::new(8, Renewal::default(), policy);
            for k in 0..1_000_u64 {
                let hash = fickle.hash_one(k);
                shard.insert(&fickle, hash, k, k * 10, Stamp::default(), 0, climb::START);
                assert!(shard.len() <= 8, "{policy:?}");
                assert_eq!(shard.index.len(), shard.len(), "{policy:?}");
                assert!(
                    shard.index.iter().all(|at| shard.slab.get(at).is_some()),
                    "{policy:?}"
                );
            }
        }
    }

    /// Removing entries without evicting leaves vacated numbers that compaction lets go, so
    /// insert/remove churn does not grow memory.
    #[test]
    fn rings_do_not_grow_with_churn() {
        for policy in POLICIES {
            let mut shard = Shard::new(100, Renewal::default(), policy);
            for k in 0..10_000_u64 {
                put(&mut shard, k, 0, 0);
                shard.remove(fixed().hash_one(k), &&k);
            }
            assert!(
                shard.core.main.len() + shard.core.small.len() <= 2 * 100 + 64,
                "{policy:?}"
            );
        }
    }

    /// Entries whose time has passed leave before any live entry is evicted, whatever their
    /// place in the eviction order and their time to live, and without anyone reading them.
    #[test]
    fn expired_entries_leave_before_live_ones() {
        const SECOND: u64 = 1_000_000_000;
        for policy in POLICIES {
            let mut shard = Shard::new(100, Renewal::default(), policy);
            // Long-lived entries first (the oldest, first in line for eviction), then short-lived.
            for k in 0..50_u64 {
                put(&mut shard, k, 3_600 * SECOND, 0);
            }
            for k in 50..100_u64 {
                put(&mut shard, k, SECOND, 0);
            }
            for k in 100..150_u64 {
                put(&mut shard, k, 3_600 * SECOND, 2 * SECOND);
            }
            let counts = shard.counts();
            assert_eq!((counts.expired, counts.evicted), (50, 0), "{policy:?}");
            assert_eq!(shard.len(), 100, "{policy:?}");
            for k in (0..50).chain(100..150) {
                let held = shard
                    .get(fixed().hash_one(k), &&k, |deadline| 2 * SECOND < deadline)
                    .is_some();
                assert!(held, "{policy:?}: {k} was evicted");
            }
        }
    }

    /// A full shard whose oldest entry is removed and replaced, 10,000 times: its rings and its
    /// slab stay within a fifth of its bound, and it keeps all 100 entries.
    #[test]
    fn vacated_numbers_stay_bounded_in_a_full_shard() {
        for policy in POLICIES {
            let mut shard = Shard::new(100, Renewal::default(), policy);
            for k in 0..100_u64 {
                put(&mut shard, k, 0, 0);
            }
            for k in 100..10_100_u64 {
                assert!(
                    shard.remove(fixed().hash_one(k - 100), &&(k - 100)),
                    "{policy:?}"
                );
                put(&mut shard, k, 0, 0);
                assert_eq!(shard.len(), 100, "{policy:?}");
            }
            assert!(
                shard.core.main.len() + shard.core.small.len() <= 100 + 100 / 4 + 32,
                "{policy:?}"
            );
            assert!(shard.slab.places() <= 100 + 100 / 4 + 32, "{policy:?}");
        }
    }

    /// A hot set of 50 keys, read again after every 100 keys of a scan of 10,000 keys seen
    /// once, through a shard of 100: under the default policy the scan passes through the small
    /// queue and the hot keys stay; under LRU and FIFO each 100 scan keys push them all out.
    #[test]
    fn the_default_policy_resists_scans() {
        let requests = || {
            (0..100_u64)
                .flat_map(|round| (0..50).chain(1_000 + round * 100..1_000 + round * 100 + 100))
        };
        let hot_reads = 100 * 50;
        let auto = hits(Policy::Auto, 100, requests());
        assert!(auto >= hot_reads * 95 / 100, "{auto} of {hot_reads}");
        assert_eq!(hits(Policy::Lru, 100, requests()), 0);
        assert_eq!(hits(Policy::Fifo, 100, requests()), 0);
    }

    /// A loop over 110 keys through a shard of 100: LRU and FIFO always evict the key needed
    /// next (no hits); the default policy keeps a fixed part of the loop (almost 100 of 110).
    #[test]
    fn the_default_policy_resists_loops() {
        let requests = || (0..110 * 100).map(|i| i % 110);
        assert_eq!(hits(Policy::Lru, 100, requests()), 0);
        assert_eq!(hits(Policy::Fifo, 100, requests()), 0);
        let auto = hits(Policy::Auto, 100, requests());
        assert!(auto > 110 * 100 * 80 / 100, "{auto} hits");
    }

    /// A key the ghost forgot but recalls as recurring meets main's hand entry: it takes an
    /// unused entry's place, and joins the small queue like a new key past a used one.
    #[test]
    fn a_recurring_key_meets_the_hand_of_main() {
        let hash = |k: u64| fixed().hash_one(k);
        let mut shard = Shard::new(100, Renewal::default(), Policy::Auto);
        // Keys 200..297 return while the shard fills, so they join main; 0..3, the small queue.
        for k in 200..297 {
            shard.core.ghost.add(hash(k));
            put(&mut shard, k, 0, 0);
        }
        for k in 0..3 {
            put(&mut shard, k, 0, 0);
        }
        // Keys 1,000..1,003 came back once, then 1,000 departures went by: the small queue's
        // ghost forgot them, not that they came back.
        for k in 1_000..1_003 {
            shard.core.ghost.add(hash(k));
            shard.core.ghost.recall(hash(k));
        }
        for k in 10_000..11_000 {
            shard.core.ghost.add(hash(k));
        }
        assert_eq!((shard.len(), shard.core.small_len), (100, 3));
        // Key 200, under the hand, is unused: key 1,000 takes its place in main.
        put(&mut shard, 1_000, 0, 0);
        assert_eq!(get(&shard, 1_000, 0), Some(10_000));
        assert_eq!(get(&shard, 200, 0), None);
        assert_eq!(shard.core.small_len, 3);
        // Key 201, under the hand now, was just used: it goes round, and key 1,001 joins the
        // small queue, pushing out its oldest entry.
        assert_eq!(get(&shard, 201, 0), Some(2_010));
        put(&mut shard, 1_001, 0, 0);
        assert_eq!(get(&shard, 1_001, 0), Some(10_010));
        assert_eq!(get(&shard, 201, 0), Some(2_010));
        assert_eq!(get(&shard, 0, 0), None);
        // Key 202 is next, unused: key 1,002 takes its place.
        put(&mut shard, 1_002, 0, 0);
        assert_eq!(get(&shard, 1_002, 0), Some(10_020));
        assert_eq!(get(&shard, 202, 0), None);
        assert_eq!((shard.len(), shard.core.small_len), (100, 3));
    }

    /// Back after the first fill, while the small queue still holds nearly every entry, a loop
    /// over a little more keys than the shard holds misses only the keys it cannot hold, not a
    /// whole pass as each returning key pushes out the next one asked for.
    #[test]
    fn a_loop_back_after_the_first_fill_misses_only_what_does_not_fit() {
        let mut shard = Shard::new(1000, Renewal::default(), Policy::Auto);
        let mut misses = Vec::new();
        for _ in 0..5 {
            let mut pass = 0;
            for k in 0..1100 {
                if get(&shard, k, 0).is_none() {
                    pass += 1;
                    put(&mut shard, k, 0, 0);
                }
            }
            misses.push(pass);
        }
        assert_eq!(misses[0], 1100);
        assert!(misses[1] < 200, "{misses:?}");
        assert!(misses[2..].iter().all(|&m| m <= 110), "{misses:?}");
    }

    /// LFU keeps keys used often over keys used once, even newer ones.
    #[test]
    fn lfu_keeps_frequent_keys() {
        let mut shard = Shard::new(10, Renewal::default(), Policy::Lfu);
        for k in 0..5 {
            put(&mut shard, k, 0, 0);
            for _ in 0..10 {
                get(&shard, k, 0);
            }
        }
        for k in 100..120 {
            put(&mut shard, k, 0, 0);
            get(&shard, k, 0);
        }
        for k in 0..5 {
            assert_eq!(get(&shard, k, 0), Some(k * 10), "frequent key {k}");
        }
        assert_eq!(shard.len(), 10);
    }

    /// LFU counts age: keys used often long ago give way to keys used a little now.
    #[test]
    fn lfu_forgets_old_favourites() {
        let mut shard = Shard::new(10, Renewal::default(), Policy::Lfu);
        for k in 0..5 {
            put(&mut shard, k, 0, 0);
            for _ in 0..20 {
                get(&shard, k, 0);
            }
        }
        for k in 100..1_100 {
            put(&mut shard, k, 0, 0);
            get(&shard, k, 0);
            get(&shard, k, 0);
        }
        for k in 0..5 {
            assert_eq!(get(&shard, k, 0), None, "old favourite {k}");
        }
    }

    /// FIFO evicts the oldest entry, hits or not.
    #[test]
    fn fifo_evicts_in_insertion_order() {
        let mut shard = Shard::new(3, Renewal::default(), Policy::Fifo);
        for k in 0..3 {
            put(&mut shard, k, 0, 0);
            get(&shard, k, 0);
        }
        put(&mut shard, 3, 0, 0);
        assert_eq!(get(&shard, 0, 0), None);
        put(&mut shard, 4, 0, 0);
        assert_eq!(get(&shard, 1, 0), None);
        for k in 2..5 {
            assert_eq!(get(&shard, k, 0), Some(k * 10));
        }
    }

    /// Expired entries leave before live ones, under every policy.
    #[test]
    fn every_policy_evicts_expired_entries_first() {
        for policy in POLICIES {
            let mut shard = Shard::new(4, Renewal::default(), policy);
            for k in 0..4 {
                put(&mut shard, k, if k == 2 { 100 } else { 0 }, 0);
            }
            assert_eq!(
                put(&mut shard, 9, 0, 200),
                Counts { expired: 1, ..NONE },
                "{policy:?}"
            );
            for k in [0, 1, 3, 9] {
                assert!(get(&shard, k, 200).is_some(), "{policy:?} key {k}");
            }
        }
    }

    /// Key `k` weighs `k % 100`.
    #[allow(clippy::trivially_copy_pass_by_ref, reason = "a weigher's signature")]
    fn weigh_value(key: &u64, _: &u64) -> u64 {
        *key % 100
    }

    /// Bounded by weight alone, every policy evicts expired entries before live ones too.
    #[test]
    fn every_policy_evicts_expired_entries_first_by_weight() {
        for policy in POLICIES {
            let mut shard = Shard::new(usize::MAX, Renewal::default(), policy);
            shard.weigh(weigh_value, 10);
            for k in 1..=4 {
                put(&mut shard, k, if k == 2 { 100 } else { 0 }, 0);
            }
            assert_eq!(shard.weight(), 10);
            assert_eq!(
                put(&mut shard, 102, 0, 200),
                Counts { expired: 1, ..NONE },
                "{policy:?}"
            );
            assert_eq!(shard.weight(), 10, "{policy:?}");
            for k in [1, 102, 3, 4] {
                assert!(get(&shard, k, 200).is_some(), "{policy:?} key {k}");
            }
        }
    }

    /// Weight and count bounds together: each holds after every insert, under every policy, and
    /// the shard's total is the sum of its entries' weights.
    #[test]
    fn weight_and_count_bounds_hold_together() {
        for policy in POLICIES {
            let mut shard = Shard::new(20, Renewal::default(), policy);
            shard.weigh(weigh_value, 60);
            let mut x = 0x9E37_79B9_7F4A_7C15_u64;
            for _ in 0..5_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Weights 0..=99 (some heavier than the budget of 60).
                let key = x % 100;
                if get(&shard, key, 0).is_none() {
                    put(&mut shard, key, 0, 0);
                }
                let sum: u64 = shard.slab.iter().map(|slot| slot.key % 100).sum();
                assert_eq!(shard.weight(), sum, "{policy:?}");
                assert!(shard.weight() <= 60, "{policy:?}");
                assert!(shard.len() <= 20, "{policy:?}");
            }
        }
    }
}
