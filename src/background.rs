//! Supervised background work: a task that panics is logged, counted in `/metrics` and started
//! again, and stopping the supervisor stops the task with it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};

use crate::metrics::Metrics;

/// How long a task that panicked rests before it starts again: a task that panics at once is
/// not restarted in a tight loop.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs `start()` until it returns, restarting it whenever it panics. Aborting the returned
/// handle aborts the task too.
pub fn supervise<F, Fut>(name: &'static str, metrics: Arc<Metrics>, start: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            // A set of one: dropping it (the supervisor aborted) aborts the task.
            let mut running = JoinSet::new();
            running.spawn(start());
            match running.join_next().await {
                Some(Err(e)) if e.is_panic() => {
                    tracing::error!(task = name, "background task panicked; restarting it");
                    metrics.task_failed(name);
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                _ => {
                    tracing::info!(task = name, "background task ended");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_counted_and_started_again() {
        let metrics = Arc::new(Metrics::default());
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let supervisor = supervise("flaky", metrics.clone(), move || {
            let start = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(start >= 2, "fails on its first two starts");
            }
        });
        supervisor.await.unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        let text = metrics.encode();
        assert!(
            text.contains(r#"labgate_background_task_failures_total{task="flaky"} 2"#),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_supervisor_stops_the_task() {
        let metrics = Arc::new(Metrics::default());
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let supervisor = supervise("forever", metrics, move || {
            let counted = counted.clone();
            async move {
                loop {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        supervisor.abort();
        let _ = supervisor.await;
        let seen = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            seen,
            "the task went on after its supervisor"
        );
    }
}
