//! The outbox consumer: ships events to the hub in order, in batches, retrying until the hub has
//! them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use suanli_client::{Client, ClientError};
use suanli_proto::{AgentEvent, AttemptRef, EventKind, EventResults, EventStatus};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;

use crate::Backoff;
use crate::backend::BoxFuture;

/// Most events per POST.
pub(crate) const MAX_BATCH: usize = 200;
/// Most payload bytes per POST, as counted by [`payload_size`]; a single event always goes.
pub(crate) const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Bytes counted per event on top of its text, for the JSON around it.
pub(crate) const EVENT_OVERHEAD: usize = 256;
/// How long a batch waits for more events after its first.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// Where batches go (the hub client; a fake in tests).
pub(crate) trait EventPost: Send + Sync + 'static {
    fn post(&self, events: Vec<AgentEvent>) -> BoxFuture<'_, Result<EventResults, ClientError>>;
}

impl EventPost for Client {
    fn post(&self, events: Vec<AgentEvent>) -> BoxFuture<'_, Result<EventResults, ClientError>> {
        Box::pin(self.events(events))
    }
}

fn attempt_of(e: &AgentEvent) -> AttemptRef {
    AttemptRef {
        job: e.job,
        attempt: e.attempt,
    }
}

/// An event's weight in a batch: its log data (or finish message) plus [`EVENT_OVERHEAD`].
pub(crate) fn payload_size(e: &AgentEvent) -> usize {
    EVENT_OVERHEAD
        + match &e.kind {
            EventKind::Log { data, .. } => data.len(),
            EventKind::Finished { message, .. } => message.len(),
            EventKind::Started { .. } => 0,
        }
}

/// The next batch: waits for one event (`held` first, if any), then takes more for up to
/// [`BATCH_WINDOW`], until [`MAX_BATCH`] events, or until the next event would bring the batch over
/// [`MAX_BATCH_BYTES`]; that event is left in `held` for the next batch. `None` when the outbox is
/// closed and empty.
pub(crate) async fn next_batch(
    rx: &mut UnboundedReceiver<AgentEvent>,
    held: &mut Option<AgentEvent>,
) -> Option<Vec<AgentEvent>> {
    let first = match held.take() {
        Some(e) => e,
        None => rx.recv().await?,
    };
    let mut bytes = payload_size(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
    while batch.len() < MAX_BATCH {
        // Take what is already queued without waiting.
        let e = match rx.try_recv() {
            Ok(e) => e,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) | Err(_) => break,
            },
        };
        bytes += payload_size(&e);
        if bytes > MAX_BATCH_BYTES {
            *held = Some(e);
            break;
        }
        batch.push(e);
    }
    Some(batch)
}

pub(crate) struct Shipper<P: EventPost> {
    pub post: Arc<P>,
    /// Called once per attempt the hub calls stale.
    pub on_stale: Box<dyn Fn(AttemptRef) + Send + Sync>,
    pub backoff: Backoff,
    stale: HashSet<AttemptRef>,
}

impl<P: EventPost> Shipper<P> {
    pub fn new(
        post: Arc<P>,
        on_stale: Box<dyn Fn(AttemptRef) + Send + Sync>,
        backoff: Backoff,
    ) -> Self {
        Shipper {
            post,
            on_stale,
            backoff,
            stale: HashSet::new(),
        }
    }

    /// Ships until the outbox is closed and empty.
    pub async fn run(mut self, mut rx: UnboundedReceiver<AgentEvent>) {
        let mut held = None;
        while let Some(mut batch) = next_batch(&mut rx, &mut held).await {
            batch.retain(|e| !self.stale.contains(&attempt_of(e)));
            if !batch.is_empty() {
                self.ship(batch).await;
            }
        }
        tracing::debug!("event outbox closed; shipper done");
    }

    async fn ship(&mut self, batch: Vec<AgentEvent>) {
        let mut backoff = self.backoff.clone();
        let mut failures = 0u32;
        loop {
            match self.post.post(batch.clone()).await {
                Ok(res) => {
                    if failures > 0 {
                        tracing::info!(
                            events = batch.len(),
                            "events shipped after the hub came back"
                        );
                    }
                    if res.results.len() != batch.len() {
                        tracing::warn!(
                            sent = batch.len(),
                            results = res.results.len(),
                            "hub returned a different number of event results"
                        );
                    }
                    for (e, status) in batch.iter().zip(res.results) {
                        let r = attempt_of(e);
                        if status == EventStatus::Stale && self.stale.insert(r) {
                            tracing::warn!(
                                job = %r.job,
                                attempt = r.attempt,
                                "hub says this attempt is no longer current: stopping it and dropping its events"
                            );
                            (self.on_stale)(r);
                        }
                    }
                    return;
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    let delay = backoff.next_delay();
                    if failures == 1 {
                        tracing::warn!(error = %e, events = batch.len(), "cannot ship events; retrying");
                    } else {
                        tracing::debug!(error = %e, ?delay, failures, "event shipping still failing");
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        events = batch.len(),
                        "hub refused a batch of events; dropping it"
                    );
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use suanli_proto::{ApiError, ErrorCode, Stream};
    use suanli_types::JobId;
    use tokio::sync::mpsc;

    use super::*;

    #[derive(Default)]
    struct FakeHub {
        script: Mutex<VecDeque<Result<Vec<EventStatus>, ErrorCode>>>,
        calls: Mutex<Vec<Vec<AgentEvent>>>,
    }

    impl EventPost for FakeHub {
        fn post(
            &self,
            events: Vec<AgentEvent>,
        ) -> BoxFuture<'_, Result<EventResults, ClientError>> {
            self.calls.lock().unwrap().push(events.clone());
            let next = self.script.lock().unwrap().pop_front();
            Box::pin(async move {
                match next {
                    Some(Err(code)) => Err(ClientError::Api(ApiError::new(code, "scripted"))),
                    Some(Ok(results)) => Ok(EventResults { results }),
                    None => Ok(EventResults {
                        results: vec![EventStatus::Accepted; events.len()],
                    }),
                }
            })
        }
    }

    fn log(job: i64, seq: u64) -> AgentEvent {
        AgentEvent {
            job: JobId(job),
            attempt: 1,
            kind: EventKind::Log {
                seq,
                stream: Stream::Stdout,
                data: format!("{seq}\n"),
            },
        }
    }

    fn shipper(hub: &Arc<FakeHub>, stale: Arc<Mutex<Vec<AttemptRef>>>) -> Shipper<FakeHub> {
        Shipper::new(
            hub.clone(),
            Box::new(move |r| stale.lock().unwrap().push(r)),
            Backoff::new(Duration::from_millis(1), Duration::from_millis(4)),
        )
    }

    #[tokio::test]
    async fn batches_in_order() {
        let hub = Arc::new(FakeHub::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let events: Vec<AgentEvent> = (0..450).map(|i| log(1, i)).collect();
        for e in &events {
            tx.send(e.clone()).unwrap();
        }
        drop(tx);
        shipper(&hub, Default::default()).run(rx).await;
        let calls = hub.calls.lock().unwrap();
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            [200, 200, 50]
        );
        assert_eq!(calls.concat(), events);
    }

    #[tokio::test]
    async fn batches_are_capped_by_size() {
        let hub = Arc::new(FakeHub::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let big = |seq: u64| AgentEvent {
            job: JobId(1),
            attempt: 1,
            kind: EventKind::Log {
                seq,
                stream: Stream::Stderr,
                data: char::from(b'a' + (seq % 26) as u8)
                    .to_string()
                    .repeat(crate::logs::MAX_CHUNK),
            },
        };
        let mut events: Vec<AgentEvent> = (0..40).map(big).collect();
        events.insert(20, log(2, 0));
        for e in &events {
            tx.send(e.clone()).unwrap();
        }
        drop(tx);
        shipper(&hub, Default::default()).run(rx).await;
        let calls = hub.calls.lock().unwrap();
        // 15 chunks of 64 KiB (+ overhead) fit in 1 MiB, 16 do not.
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [15, 16, 10]);
        assert!(calls.iter().all(|c| {
            let bytes: usize = c.iter().map(payload_size).sum();
            bytes <= MAX_BATCH_BYTES && bytes > MAX_BATCH_BYTES / 2
        }));
        assert_eq!(calls.concat(), events, "in order, none dropped");
    }

    #[tokio::test]
    async fn retries_transient_errors_and_drops_refused_batches() {
        let hub = Arc::new(FakeHub::default());
        hub.script.lock().unwrap().extend([
            Err(ErrorCode::Unavailable),
            Err(ErrorCode::Internal),
            Ok(vec![EventStatus::Accepted; 2]),
            Err(ErrorCode::BadRequest),
        ]);
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(log(1, 0)).unwrap();
        tx.send(log(1, 1)).unwrap();
        let task = tokio::spawn(shipper(&hub, Default::default()).run(rx));
        while hub.calls.lock().unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(log(1, 2)).unwrap();
        while hub.calls.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(log(1, 3)).unwrap();
        drop(tx);
        task.await.unwrap();
        let calls = hub.calls.lock().unwrap();
        assert_eq!(calls.len(), 5);
        assert!(calls[..3].iter().all(|c| *c == [log(1, 0), log(1, 1)]));
        assert_eq!(calls[3], [log(1, 2)], "refused once, not retried");
        assert_eq!(calls[4], [log(1, 3)]);
    }

    #[tokio::test]
    async fn stale_attempts_are_stopped_and_their_events_dropped() {
        let hub = Arc::new(FakeHub::default());
        hub.script
            .lock()
            .unwrap()
            .push_back(Ok(vec![EventStatus::Stale, EventStatus::Accepted]));
        let stale = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(log(1, 0)).unwrap();
        tx.send(log(2, 0)).unwrap();
        let task = tokio::spawn(shipper(&hub, stale.clone()).run(rx));
        while hub.calls.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send(log(1, 1)).unwrap();
        tx.send(log(2, 1)).unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            *stale.lock().unwrap(),
            [AttemptRef {
                job: JobId(1),
                attempt: 1
            }]
        );
        let calls = hub.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], [log(2, 1)]);
    }
}
