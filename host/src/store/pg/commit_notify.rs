//! Wake-ups for change-feed readers across daemons: every transaction that adds to the change
//! feed sends `NOTIFY airlock_committed` (delivered when it commits), and each daemon that waits
//! for news keeps one connection outside the pool LISTENing on that channel, so a commit made
//! by any daemon wakes the long polls and webhook workers of all of them at once. The listener
//! starts with the first wait (CLI commands never open it) and reconnects on its own; while it
//! is down, waiters still wake at their timeout and read again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgStore;

/// The channel commits are announced on.
pub const CHANNEL: &str = "airlock_committed";

/// How long the first wait waits for the listener to be in place before it just waits.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// Pause before reconnecting a listener that lost its connection, doubled after each failed
/// attempt up to [`RECONNECT_MAX`] (a database that is down is not asked every second).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A task that stops when this is dropped (the listener stops with its store).
pub struct OwnedTask(tokio::task::JoinHandle<()>);

impl Drop for OwnedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgStore {
    /// Wakes this process's waiters now (a commit or a retry made here); other daemons are
    /// woken by the NOTIFY of the committing transaction.
    pub fn notify_committed(&self) {
        self.committed.notify_waiters();
    }

    /// Waits until any daemon commits a change to the feed, or `within` passes.
    pub async fn committed_within(&self, within: Duration) {
        // Registered before the listener can deliver anything, so no wake-up is lost.
        let woken = self.committed.notified();
        let started = tokio::time::Instant::now();
        self.listen().await;
        let left = within.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left, woken).await;
    }

    /// Starts the listener once and waits (briefly) until it LISTENs.
    pub async fn listen(&self) {
        self.listener
            .get_or_init(|| async {
                let (ready, is_ready) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(run(
                    self.config.clone(),
                    self.tls(),
                    self.committed.clone(),
                    self.shown.clone(),
                    ready,
                ));
                let _ = tokio::time::timeout(READY_WITHIN, is_ready).await;
                OwnedTask(task)
            })
            .await;
    }
}

/// Keeps one LISTEN connection up, turning each notification into a local wake-up.
async fn run(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    committed: Arc<Notify>,
    shown: String,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Backoff::default();
    loop {
        let why =
            match listen_once(&config, &tls, &committed, &mut ready, &mut backoff, &shown).await {
                Ok(()) => "connection closed".to_string(),
                Err(e) => e.to_string(),
            };
        let (first, pause) = backoff.ended();
        if first {
            tracing::warn!("change-feed listener at {shown}: {why}; retrying in {pause:?}");
        } else {
            tracing::debug!("change-feed listener at {shown}: {why}; retrying in {pause:?}");
        }
        // Whatever was announced while it was down is found by reading again.
        committed.notify_waiters();
        tokio::time::sleep(pause).await;
    }
}

/// Reconnect pacing: [`RECONNECT_AFTER`] doubling per failed attempt up to [`RECONNECT_MAX`],
/// back to the start once a connection listens; one warning when an outage starts and one
/// message when it ends, whatever happens in between.
#[derive(Debug)]
struct Backoff {
    pause: Duration,
    down: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            pause: RECONNECT_AFTER,
            down: false,
        }
    }
}

impl Backoff {
    /// LISTEN is in place; true when that ends an outage (say so once).
    fn listening(&mut self) -> bool {
        let was_down = self.down;
        self.down = false;
        self.pause = RECONNECT_AFTER;
        was_down
    }

    /// The connection ended or could not be made: whether this starts an outage (warn once)
    /// and how long to wait before the next attempt.
    fn ended(&mut self) -> (bool, Duration) {
        let first = !self.down;
        self.down = true;
        let pause = self.pause;
        self.pause = (self.pause * 2).min(RECONNECT_MAX);
        (first, pause)
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    committed: &Notify,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
    backoff: &mut Backoff,
    shown: &str,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    // The connection delivers notifications only while it is polled, also during LISTEN.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(Ok(())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            }
        }
    });
    let _pump = OwnedTask(pump);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if backoff.listening() {
        tracing::info!("change-feed listener at {shown}: listening again");
    }
    if let Some(r) = ready.take() {
        let _ = r.send(());
    }
    while let Some(msg) = rx.recv().await {
        msg?;
        committed.notify_waiters();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_warns_once_and_backs_off_to_the_cap() {
        let mut b = Backoff::default();
        let mut warned = 0;
        let mut pauses = Vec::new();
        for _ in 0..12 {
            let (first, pause) = b.ended();
            warned += usize::from(first);
            pauses.push(pause);
        }
        assert_eq!(warned, 1, "one warning per outage");
        assert_eq!(
            &pauses[..3],
            &[RECONNECT_AFTER, RECONNECT_AFTER * 2, RECONNECT_AFTER * 4]
        );
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), RECONNECT_MAX, "capped: {pauses:?}");
    }

    #[test]
    fn recovery_is_said_once_and_restarts_the_backoff() {
        let mut b = Backoff::default();
        assert!(!b.listening(), "the first LISTEN ends no outage");
        for _ in 0..6 {
            b.ended();
        }
        assert!(b.listening(), "back after an outage: said");
        assert!(!b.listening(), "said once");
        // The next loss is a new outage: warned again, and paced from the start.
        assert_eq!(b.ended(), (true, RECONNECT_AFTER));
        assert_eq!(b.ended(), (false, RECONNECT_AFTER * 2));
    }
}
