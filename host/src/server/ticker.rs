//! The loop of the server's background tasks (the expiry sweeper, the
//! metrics refresher, the webhook deliverer): a tick now, then every
//! period, until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Runs `tick` at once and then every `period` (at least 10 ms; a tick that
/// overruns delays the next rather than bunching them) until `stop` turns
/// true or its sender goes away. A tick in flight at shutdown is dropped:
/// shutdown never waits on a stuck store or a silent receiver, and every
/// task here leaves the store consistent wherever it stops (each of its
/// writes is one atomic commit).
pub async fn every<Tick, Ticking>(period: Duration, mut stop: watch::Receiver<bool>, mut tick: Tick)
where
    Tick: FnMut() -> Ticking,
    Ticking: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn ticks_until_stopped_and_drops_a_stuck_tick() {
        let (stop, stopped) = watch::channel(false);
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&ticks);
        let task = tokio::spawn(every(Duration::from_millis(10), stopped, move || {
            let counted = Arc::clone(&counted);
            async move {
                // The third tick never ends by itself.
                if counted.fetch_add(1, Ordering::SeqCst) == 2 {
                    std::future::pending::<()>().await;
                }
            }
        }));
        while ticks.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The stuck tick holds the loop: no fourth.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stopping drops the stuck tick")
            .unwrap();
    }
}
