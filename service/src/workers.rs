//! The background workers of a serving process, owned in one place: each is registered with a name,
//! sees the stop signal between its steps, and is awaited when the service stops.
//!
//! A worker waits through [`Stop::until`] (or [`Stop::sleep`]) between two steps and returns when
//! the stop comes; a step in progress (a committed transaction, a batch posted upstream) is never
//! interrupted by the signal. [`Workers::stop`] is called once the HTTP servers have drained: it
//! signals every worker, waits for them up to a bound, then logs (and aborts) the ones still running
//! and logs the ones that panicked.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long [`Workers::stop`] waits by default: longer than an upstream request (a relay batch in
/// flight finishes), shorter than a supervisor's patience before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The stop signal as one worker sees it.
#[derive(Clone, Debug)]
pub struct Stop(CancellationToken);

impl Stop {
    /// Whether the service is stopping.
    pub fn is_stopped(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Waits for `wait` unless the stop comes first (`None`). Only for the wait between two steps:
    /// whatever `wait` was doing is dropped when the stop wins.
    pub async fn until<T>(&self, wait: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.0.cancelled() => None,
            value = wait => Some(value),
        }
    }

    /// Sleeps for `duration`; `false` when the stop came first (the worker should return).
    pub async fn sleep(&self, duration: Duration) -> bool {
        self.until(tokio::time::sleep(duration)).await.is_some()
    }
}

/// The registered workers of a process.
#[derive(Debug, Default)]
pub struct Workers {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

/// How the workers stopped: the names of those that did not stop in time and of those that
/// panicked (both logged already).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Still running at the timeout, then aborted.
    pub late: Vec<&'static str>,
    /// Ended by a panic.
    pub panicked: Vec<&'static str>,
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `worker` on the current runtime under `name`; it gets the stop signal and should
    /// return soon after it comes.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, worker: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tasks.spawn(worker(Stop(self.stop.child_token())));
        self.names.insert(handle.id(), name);
        tracing::debug!(worker = name, "background worker started");
    }

    /// The names of the registered workers still running or not yet awaited.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.names.values().copied().collect();
        names.sort_unstable();
        names
    }

    /// Runs `serving` (a service's HTTP servers, their drain included) to its end, then stops the
    /// workers with [`STOP_TIMEOUT`]: no request is left then that could still need one of them.
    pub async fn stop_after<T>(self, serving: impl Future<Output = T>) -> T {
        let served = serving.await;
        self.stop(STOP_TIMEOUT).await;
        served
    }

    /// Signals the stop to every worker and waits up to `timeout` for them; those still running
    /// then are logged and aborted, those that panicked are logged.
    pub async fn stop(mut self, timeout: Duration) -> Stopped {
        let started = tokio::time::Instant::now();
        let names = self.names().join(", ");
        self.stop.cancel();
        let mut stopped = Stopped::default();
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(error))) => {
                    let name = self.names.remove(&error.id()).unwrap_or("unnamed");
                    if error.is_panic() {
                        tracing::error!(worker = name, "background worker panicked");
                        stopped.panicked.push(name);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    stopped.late = self.names();
                    for name in &stopped.late {
                        tracing::warn!(
                            worker = *name,
                            timeout_ms = timeout.as_millis() as u64,
                            "background worker did not stop in time; aborted"
                        );
                    }
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        tracing::info!(
            workers = names,
            late = stopped.late.len(),
            panicked = stopped.panicked.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "background workers stopped"
        );
        stopped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn stop_signals_and_awaits_every_worker_and_names_the_late_and_the_panicked() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut workers = Workers::new();
        let steps = Arc::clone(&finished);
        workers.spawn("polite", move |stop| async move {
            while stop.sleep(Duration::from_millis(5)).await {}
            // Work after the signal (a last step) is awaited, not cut off.
            tokio::time::sleep(Duration::from_millis(50)).await;
            steps.fetch_add(1, Ordering::SeqCst);
        });
        workers.spawn("deaf", |_stop| async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        workers.spawn("broken", |stop| async move {
            stop.until(std::future::pending::<()>()).await;
            panic!("broken on purpose");
        });
        assert_eq!(workers.names(), ["broken", "deaf", "polite"]);

        let started = tokio::time::Instant::now();
        // Long enough for the polite worker's 50 ms last step on a loaded CI machine (300 ms was not:
        // the test process can be descheduled that long while other tests run beside it).
        let stopped = workers.stop(Duration::from_secs(2)).await;

        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the polite worker finished its last step"
        );
        assert_eq!(stopped.late, ["deaf"]);
        assert_eq!(stopped.panicked, ["broken"]);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn workers_that_all_stop_are_not_waited_for_longer() {
        let mut workers = Workers::new();
        workers.spawn("ticker", |stop| async move {
            while stop.sleep(Duration::from_secs(3600)).await {}
        });
        let started = tokio::time::Instant::now();
        assert_eq!(workers.stop(Duration::from_secs(30)).await, Stopped::default());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
