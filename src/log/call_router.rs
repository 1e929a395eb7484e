//! `tracing` on OpenVPN's thread without a dispatcher set around every call.
//!
//! Setting the thread's default dispatcher for the length of each OpenVPN call (what
//! `tracing::dispatcher::with_default` does: an `Arc` clone and drop, two thread-local swaps,
//! a global counter up and down, four locked read-modify-writes in all) is a fixed cost of
//! every login (docs/performance.md, "Accept path after the reshape"). Instead, one
//! process-wide subscriber ([`CallRouter`], installed by the first plugin instance) hands each
//! event to the sink of the instance whose call runs on the thread, which a call marks with one
//! thread-local write ([`CallLog::scope`]). Where the router cannot be the process's default
//! (another global subscriber), or the thread has a default of its own, a call sets its
//! dispatcher as before.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use super::{event_line, Sink};

/// The level every dispatcher of the plugin logs at ([`super::dispatch`] with `INFO`).
const MAX_LEVEL: LevelFilter = LevelFilter::INFO;

/// The open instances' sinks, by id: looked up once per event (events are rare: a login's
/// own line does not go through `tracing`).
static INSTANCES: Mutex<Vec<(u64, Sink)>> = Mutex::new(Vec::new());
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);
/// Whether the router is the process's default dispatcher.
static ROUTER: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// The instance whose call runs on this thread (0: none).
    static IN_CALL: Cell<u64> = const { Cell::new(0) };
}

/// How an instance's calls from OpenVPN log through `tracing`.
pub struct CallLog {
    id: u64,
    /// For a call the router cannot serve.
    dispatch: tracing::Dispatch,
}

impl CallLog {
    /// `sink` is where `dispatch` sends its lines.
    pub fn new(sink: Sink, dispatch: tracing::Dispatch) -> CallLog {
        let id = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        INSTANCES.lock().push((id, sink));
        ROUTER.get_or_init(|| {
            tracing::dispatcher::set_global_default(tracing::Dispatch::new(CallRouter)).is_ok()
        });
        CallLog { id, dispatch }
    }

    /// Runs `f` (one call from OpenVPN) with its events logged to this instance's sink.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        if !router_serves_this_thread() {
            return tracing::dispatcher::with_default(&self.dispatch, f);
        }
        let outer = IN_CALL.replace(self.id);
        // Put back on the way out, also if `f` panics (the FFI boundary catches it).
        let _restore = Restore(outer);
        f()
    }
}

/// The router is the default here: installed, and no dispatcher of the thread's own set.
fn router_serves_this_thread() -> bool {
    ROUTER.get() == Some(&true)
        && tracing::dispatcher::get_default(|current| current.is::<CallRouter>())
}

impl Drop for CallLog {
    fn drop(&mut self) {
        INSTANCES.lock().retain(|(id, _)| *id != self.id);
    }
}

struct Restore(u64);

impl Drop for Restore {
    fn drop(&mut self) {
        IN_CALL.set(self.0);
    }
}

/// The process-wide subscriber: events only (the plugin opens no spans), at [`MAX_LEVEL`],
/// to the sink of the instance in call on the thread. An event on a thread in no call is
/// dropped, as it was with no dispatcher set.
struct CallRouter;

impl Subscriber for CallRouter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        MAX_LEVEL >= *metadata.level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(MAX_LEVEL)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let id = IN_CALL.get();
        if id == 0 {
            return;
        }
        let sink = INSTANCES
            .lock()
            .iter()
            .find(|(instance, _)| *instance == id)
            .map(|(_, sink)| sink.clone());
        if let Some(sink) = sink {
            sink.line(*event.metadata().level(), &event_line(event));
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn collecting() -> (Sink, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let sink: Sink = Arc::new(move |_, line: &str| kept.lock().push(line.to_owned()));
        (sink, lines)
    }

    fn call_log() -> (CallLog, Arc<Mutex<Vec<String>>>) {
        let (sink, lines) = collecting();
        let dispatch = super::super::dispatch(sink.clone(), tracing::Level::INFO);
        (CallLog::new(sink, dispatch), lines)
    }

    #[test]
    fn each_instance_gets_the_events_of_its_own_calls_only() {
        let (first, first_lines) = call_log();
        let (second, second_lines) = call_log();
        first.scope(|| {
            tracing::warn!(n = 1, "first");
            second.scope(|| tracing::warn!("second, inside the first"));
            tracing::debug!("not at this level");
            tracing::info!("first again");
        });
        tracing::warn!("outside any call");
        assert_eq!(
            *first_lines.lock(),
            ["first n=1", "first again"],
            "the instance's events, at INFO and above, and only inside its calls"
        );
        assert_eq!(*second_lines.lock(), ["second, inside the first"]);
    }

    #[test]
    fn a_thread_with_a_default_of_its_own_still_logs_a_call_to_its_instance() {
        let (call, lines) = call_log();
        let (other_sink, other_lines) = collecting();
        let other = super::super::dispatch(other_sink, tracing::Level::INFO);
        tracing::dispatcher::with_default(&other, || {
            call.scope(|| tracing::warn!("in the call"));
            tracing::warn!("outside");
        });
        assert_eq!(*lines.lock(), ["in the call"]);
        assert_eq!(*other_lines.lock(), ["outside"]);
    }

    #[test]
    fn a_closed_instance_gets_nothing() {
        let (call, lines) = call_log();
        let id = call.id;
        drop(call);
        IN_CALL.set(id);
        tracing::warn!("after close");
        IN_CALL.set(0);
        assert!(lines.lock().is_empty());
    }
}
