//! One hook through which every driver reports its calls (provider, action, outcome, latency),
//! so the operator's metrics see all providers without the drivers knowing about Prometheus.

use std::sync::OnceLock;
use std::time::Duration;

/// Receives one request to the cloud: provider code, API action, outcome (`success` or the
/// error class reason) and its latency. Each attempt of a retried call is one request.
pub type CallObserver =
    fn(provider: &'static str, action: &str, outcome: &'static str, elapsed: Duration);

static OBSERVER: OnceLock<CallObserver> = OnceLock::new();

/// Installs the process-wide observer (the first one wins; later calls are ignored).
pub fn set_call_observer(observer: CallObserver) {
    let _ = OBSERVER.set(observer);
}

/// Reports a finished call to the observer, if one is installed.
pub fn record_call(provider: &'static str, action: &str, outcome: &'static str, elapsed: Duration) {
    if let Some(observer) = OBSERVER.get() {
        observer(provider, action, outcome, elapsed);
    }
}
