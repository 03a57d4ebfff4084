//! Functions returning a `Result` spelled `…Result<…>`: their cache holds only `Ok` values, so the
//! error type needs nothing (no `Clone`, no serde). A failed leader's error reaches the callers
//! waiting on it where it can be cloned ([`Handover`]); otherwise they compute, one at a time.
//!
//! ```text
//! // sync:
//! match lead_fallible(hit_or_miss(cache, key), handover) {
//!     Ok(result) => result,                        // a hit, or a shared value or error
//!     Err(lead) => lead.finish((move || -> Result<T, E> { BODY })()),
//! }
//! // async:
//! match hit_or_miss(cache, key) {
//!     Ok(value) => Ok(value),
//!     Err(miss) => miss.compute_fallible_async(async move { BODY }, handover).await,
//! }
//! ```

use std::time::Instant;

use super::{Lead, Miss, Mode, always};
use crate::call::{self, Begun};
use crate::flight::{Failure, Handing};
use crate::trace::Computation;

/// A return type whose last path segment is `Result`: `std::result::Result`, under any alias.
/// The cache stores its [`Ok`](Fallible::Ok) values only.
#[diagnostic::on_unimplemented(
    message = "`#[cached]` reads a return type named `Result` as `std::result::Result`, caching only its `Ok` values, and `{Self}` is not one",
    label = "a return type named `Result` that is not `std::result::Result`",
    note = "to cache `{Self}` as a whole, return it through an alias with another name (`type Reply = …;`)"
)]
pub trait Fallible: Sized {
    /// What the cache stores.
    type Ok;
    /// What it never stores.
    type Err;
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
    fn from_result(result: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> Fallible for Result<T, E> {
    type Ok = T;
    type Err = E;

    #[inline]
    fn into_result(self) -> Self {
        self
    }

    #[inline]
    fn from_result(result: Self) -> Self {
        result
    }
}

/// The value of a function that returns no `Result`, as an `Ok` that is never an `Err`: how a
/// plain `async fn` takes the one async miss path.
pub(super) struct Plain<V>(pub(super) V);

impl<V> Fallible for Plain<V> {
    type Ok = V;
    type Err = core::convert::Infallible;

    #[inline]
    fn into_result(self) -> Result<V, Self::Err> {
        Ok(self.0)
    }

    #[inline]
    fn from_result(result: Result<V, Self::Err>) -> Self {
        match result {
            Ok(value) => Self(value),
            Err(never) => match never {},
        }
    }
}

/// Whether a failed leader's error can be handed to its waiters, decided from the return type
/// `R` by autoref specialization: `(&&Sharing::<R>::new()).share()`. [`ShareClone`] answers for a
/// `Result` whose error is `Clone + Send + 'static`, [`ShareNone`] for any other.
pub struct Sharing<R>(core::marker::PhantomData<fn() -> R>);

impl<R> Sharing<R> {
    #[must_use]
    pub const fn new() -> Self {
        Self(core::marker::PhantomData)
    }
}

impl<R> Default for Sharing<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// How a leader's `Err` of type `R` travels to its waiters, if it can: its error boxed (cloned)
/// by the leader, taken back (as an `Err`) by each waiter.
pub struct Handover<R>(Option<Sharer<R>>);

struct Sharer<R> {
    boxed: fn(&R) -> Box<dyn Failure>,
    unboxed: fn(Box<dyn Failure>) -> Option<R>,
}

impl<R> Clone for Handover<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Handover<R> {}

impl<R> Clone for Sharer<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Sharer<R> {}

/// [`Sharing`] of a `Result` whose error can be cloned and sent: its waiters get a clone.
pub trait ShareClone<R> {
    fn share(&self) -> Handover<R>;
}

impl<T, E: Clone + Send + 'static> ShareClone<Result<T, E>> for &Sharing<Result<T, E>> {
    fn share(&self) -> Handover<Result<T, E>> {
        Handover(Some(Sharer {
            // Only an `Err` is handed over; `None` stands for an `Ok` and is never taken back.
            boxed: |result| Box::new(result.as_ref().err().cloned()),
            unboxed: |failure| {
                let error = failure.into_any().downcast::<Option<E>>().ok()?;
                error.map(Err)
            },
        }))
    }
}

/// [`Sharing`] of any other return type: its waiters compute.
pub trait ShareNone<R> {
    fn share(&self) -> Handover<R>;
}

impl<R> ShareNone<R> for Sharing<R> {
    fn share(&self) -> Handover<R> {
        Handover(None)
    }
}

impl<R> Handover<R> {
    /// No handover: the waiters of a failed leader compute (a [`Plain`] value never fails).
    pub(super) const fn none() -> Self {
        Self(None)
    }

    /// `failed` (an `Err`) boxed for the waiters, if it can be shared.
    fn boxed(self, failed: &R) -> Option<Box<dyn Failure>> {
        self.0.map(|sharer| (sharer.boxed)(failed))
    }

    /// Calls `fail` with the way to box `failed` (an `Err`) for the waiters, if it can be shared.
    fn fail(self, failed: &R, fail: impl FnOnce(Handing<'_>)) {
        match self.0 {
            Some(sharer) => fail(Some(&|| (sharer.boxed)(failed))),
            None => fail(None),
        }
    }

    /// Whether a waiter takes its failed leader's error: it can be shared.
    pub(super) const fn takes(self) -> bool {
        self.0.is_some()
    }

    /// The failed leader's `Err`, from the copy it left a waiter.
    pub(super) fn unbox(self, failure: Box<dyn Failure>) -> Option<R> {
        (self.0?.unboxed)(failure)
    }
}

/// [`lead`](super::lead) for a function returning a `Result` (`R`): the value of a hit, or the
/// value or error of the leader this caller waited for (`Ok`), or the [`FallibleLead`] under
/// which this caller runs the body.
///
/// The one place of a sync function that asks for [`Fallible`], so that a user's own type named
/// `Result` gets one message of ours here (and one at the companion).
#[allow(
    clippy::result_large_err,
    reason = "once per call that computes, where the body's cost dwarfs a copy"
)]
pub fn lead_fallible<K: 'static, V: 'static, R: Fallible<Ok = V>>(
    found: Result<V, Miss<K, V>>,
    handover: Handover<R>,
) -> Result<R, FallibleLead<K, V, R>> {
    let join = |value| R::from_result(Ok(value));
    match found {
        Ok(value) => Ok(join(value)),
        Err(miss) => match miss.lead_or(always, handover) {
            Ok(waited) => Ok(waited.map_or_else(|failed| failed, join)),
            Err(lead) => Err(FallibleLead {
                lead,
                handover,
                split: |result| result.into_result().map_err(|e| R::from_result(Err(e))),
                join,
            }),
        },
    }
}

/// A sync call of a function returning a `Result` (`R`) that runs the body; see
/// [`lead_fallible`].
pub struct FallibleLead<K: 'static, V: 'static, R> {
    lead: Lead<K, V>,
    handover: Handover<R>,
    /// `R`'s `Ok` value, or `R` itself (an `Err`).
    split: fn(R) -> Result<V, R>,
    join: fn(V) -> R,
}

impl<K: 'static, V: 'static, R> FallibleLead<K, V, R> {
    /// Stores an `Ok` value (the waiting callers get it too); an `Err` is not stored, and goes to
    /// the waiting callers where it can be shared. Returns `result`.
    pub fn finish(self, result: R) -> R {
        match (self.split)(result) {
            Ok(value) => (self.join)(self.lead.finish(value)),
            Err(failed) => {
                self.handover
                    .fail(&failed, |failure| self.lead.fail(failure));
                failed
            }
        }
    }
}

impl<K: 'static, V: 'static> Miss<K, V> {
    /// [`compute_async`](Miss::compute_async) for a function returning a `Result`: an `Ok` value
    /// is stored and shared; an `Err` is not stored, and goes to the waiting callers where it can
    /// be shared (otherwise they compute, one at a time).
    pub async fn compute_fallible_async<R: Fallible<Ok = V>>(
        self,
        body: impl Future<Output = R>,
        handover: Handover<R>,
    ) -> R {
        self.compute_kept_async(body, always, handover).await
    }

    /// The one async miss, over any store: an `Ok` value is stored if `keep` says so (a plain
    /// value is a [`Plain`] `Ok`); an `Err` is not stored, and goes to the waiting callers by
    /// `handover`. The store's reads, claim and write are awaited, never blocking the executor's
    /// thread (ready at once in memory).
    pub(super) async fn compute_kept_async<R: Fallible<Ok = V>>(
        self,
        body: impl Future<Output = R>,
        keep: fn(&V) -> bool,
        handover: Handover<R>,
    ) -> R {
        let Self {
            steps,
            lend,
            hash,
            key,
            mode,
        } = self;
        match mode {
            Mode::Lookup => {}
            #[cfg(feature = "switch")]
            Mode::Bypass => return body.await,
            Mode::Refresh => {
                let since = call::Since::now(steps, hash, lend.key(&key)).await;
                let mut key = Some(key);
                let trace = Computation::start(steps.head().name, "refresh");
                let value = match trace.run_async(body).await.into_result() {
                    Ok(value) => value,
                    Err(error) => {
                        trace.outcome("error");
                        call::refresh_ended(steps, hash, &lend.key_slot(&mut key), true);
                        return R::from_result(Err(error));
                    }
                };
                let kept = keep(&value);
                trace.outcome(if kept { "refresh" } else { "error" });
                let (key, lent) = (lend.key_slot(&mut key), lend.value(&value));
                // The error type (perhaps not `Send`) is not held across this await.
                call::refreshed(steps, hash, key, Some(lent), kept, since).await;
                return R::from_result(Ok(value));
            }
        }
        let trace = Computation::start(steps.head().name, "call");
        let mut found = None;
        let claim = loop {
            let (lent, out) = (lend.key(&key), lend.value_slot(&mut found));
            match call::begin(steps, hash, lent, out, false, handover.takes()).await {
                Begun::Value(outcome) => {
                    trace.outcome(outcome);
                    let Some(found) = found else {
                        unreachable!("the loop ends with a value")
                    };
                    return R::from_result(Ok(found));
                }
                Begun::Failed(failure) => {
                    if let Some(failed) = handover.unbox(failure) {
                        trace.outcome("coalesced");
                        return failed;
                    }
                }
                Begun::Lead(claim) => break claim,
            }
        };
        let started = Instant::now();
        // The `Result` ends with this statement: the future holds no error across the store's
        // write or release (it is `Send` whatever the error type); an error the waiters may
        // take is held boxed (`Send`), and the caller gets a copy of it.
        let computed = match trace.run_async(body).await.into_result() {
            Ok(value) => Ok(value),
            Err(error) => {
                trace.outcome("error");
                let failed = R::from_result(Err(error));
                let Some(boxed) = handover.boxed(&failed) else {
                    let changes = || steps.changes();
                    steps
                        .head()
                        .failed(claim, None, started.elapsed(), &changes);
                    return failed;
                };
                Err(boxed)
            }
        };
        let value = match computed {
            Ok(value) => value,
            Err(boxed) => {
                let cost = started.elapsed();
                // Released before the waiters take the error (see `release_failed`).
                let claim = call::release_failed(steps, claim, true).await;
                let changes = || steps.changes();
                steps
                    .head()
                    .failed(claim, Some(&|| boxed.clone_box()), cost, &changes);
                return handover
                    .unbox(boxed)
                    .unwrap_or_else(|| unreachable!("a shared error unboxes"));
            }
        };
        let kept = keep(&value);
        trace.outcome(if kept { "miss" } else { "error" });
        let cost = started.elapsed();
        let mut key = Some(key);
        let (key, lent) = (lend.key_slot(&mut key), lend.value(&value));
        call::finish(steps, hash, key, claim, lent, kept, cost).await;
        R::from_result(Ok(value))
    }
}
