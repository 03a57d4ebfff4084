//! The `tracing` feature: a `memo.compute` span per computation, with the function and how it
//! ended; nothing for plain hits. A minimal subscriber records what it is told.

#![cfg(feature = "tracing")]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use memo::cached;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Each span's `function`, `outcome` and `kind`, by id (its index + 1); and each event's
/// `backend` field (empty for events without one).
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<(String, String, String)>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut (String, String, String));

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "function" | "backend" => self.0.0 = value.to_string(),
            "outcome" => self.0.1 = value.to_string(),
            "kind" => self.0.2 = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn Debug) {}
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = (String::new(), String::new(), String::new());
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[index]));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = (String::new(), String::new(), String::new());
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cached]
fn parse(text: &str) -> Result<u32, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn each_computation_is_a_span_with_its_outcome_and_hits_are_silent() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("1"), Ok(1));
        assert!(parse("x").is_err());
    });
    let spans = recorder.spans.lock().unwrap().clone();
    let seen: Vec<(&str, &str)> = spans
        .iter()
        .map(|(f, o, _)| (f.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("tracing::parse", "miss"), ("tracing::parse", "error")],
        "no span for the hit"
    );
    assert!(spans.iter().all(|(_, _, kind)| kind == "call"));
}

#[cfg(feature = "disk")]
#[cached(store = disk("tracing"))]
fn stored(n: u32) -> u32 {
    n * 2
}

/// Each failure of a backend is an event naming it; the calls go on uncached.
#[cfg(feature = "disk")]
#[test]
fn each_backend_error_is_an_event() {
    // A cache directory under a regular file: it cannot be created, not even by root.
    let file = std::env::temp_dir().join(format!("memo-tracing-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    // SAFETY: no other test of this binary opens a disk cache or reads the environment.
    unsafe { std::env::set_var("MEMO_CACHE_DIR", file.join("cache")) };
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(stored(1), 2);
        assert_eq!(stored(1), 2);
    });
    std::fs::remove_file(&file).unwrap();
    let errors = stored_cache().stats().backend_errors;
    assert!(errors >= 1, "the unusable directory is counted");
    let events = recorder.events.lock().unwrap().clone();
    let disk_events = events.iter().filter(|backend| *backend == "disk").count();
    assert_eq!(
        u64::try_from(disk_events).unwrap(),
        errors,
        "one event per counted error: {events:?}"
    );
}
