//! What memo tells `tracing` (feature `tracing`): a `memo.compute` span around each computation,
//! with `function` and `outcome` (`miss`, `error`, `coalesced`, `hit`, `refresh`), a warning
//! when a refresh fails, and an event per backend error (a disk or Redis failure). Plain hits
//! emit nothing. Without the feature, all of this compiles to nothing, and a store's warnings
//! are lines on standard error, as they are with it while no subscriber is set.

/// One computation of a memoized function, traced as a span.
pub(crate) struct Computation {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Computation {
    /// Opens the span for one computation of `function`.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(function: &'static str, kind: &'static str) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!(
                "memo.compute",
                function,
                kind,
                outcome = tracing::field::Empty
            ),
        }
    }

    /// Records how the computation ended.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn outcome(&self, outcome: &'static str) {
        #[cfg(feature = "tracing")]
        self.span.record("outcome", outcome);
    }

    /// Runs `f` inside the span.
    #[cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        return self.span.in_scope(f);
        #[cfg(not(feature = "tracing"))]
        f()
    }

    /// Enters the span until [`Running::exit`] (or until a panic unwinds past it): a sync body
    /// runs in it, in the memoized function's own frame.
    #[cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]
    pub(crate) fn enter(self) -> Running {
        Running {
            #[cfg(feature = "tracing")]
            span: self.span.entered(),
        }
    }

    /// Polls `future` inside the span.
    #[cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]
    pub(crate) async fn run_async<F: Future>(&self, future: F) -> F::Output {
        #[cfg(feature = "tracing")]
        return tracing::Instrument::instrument(future, self.span.clone()).await;
        #[cfg(not(feature = "tracing"))]
        future.await
    }
}

/// A [`Computation`] whose span is entered.
pub(crate) struct Running {
    #[cfg(feature = "tracing")]
    span: tracing::span::EnteredSpan,
}

impl Running {
    /// Leaves the span, to record how the computation ended.
    #[cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]
    pub(crate) fn exit(self) -> Computation {
        Computation {
            #[cfg(feature = "tracing")]
            span: self.span.exit(),
        }
    }
}

/// A refresh of `function` (background or forced) failed (an error or a panic): the old value stays.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn refresh_failed(function: &'static str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(function, "memo: refresh failed; keeping the old value");
}

/// One failure of a store's backend (`backend`: `disk`, `redis`): the call went on uncached. An
/// event for each, at DEBUG; the store itself warns at most once per interval.
#[cfg(any(feature = "disk", feature = "redis"))]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn backend_error(backend: &'static str, error: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::debug!(backend, %error, "memo: backend error; the call goes on uncached");
}

/// A warning about a store (its backend down, damaged or misconfigured): a `tracing` event with
/// the `tracing` feature where a subscriber listens, else a line on standard error (a program
/// that turned the feature on but set no subscriber would hear nothing). Callers limit how often.
pub(crate) fn warn(line: &dyn std::fmt::Display) {
    #[cfg(feature = "tracing")]
    if !tracing::dispatcher::get_default(|dispatch| {
        dispatch.is::<tracing::subscriber::NoSubscriber>()
    }) {
        tracing::warn!(target: "memo", "{line}");
        return;
    }
    eprintln!("memo: {line}");
}
