//! One live subscriber of the control socket (`corral events --follow`): a bounded queue
//! filled by the hub without waiting, and the task that writes it to the client. When the
//! queue is full the event is dropped and counted; the client is told with a
//! `{"dropped":N}` line at the place in the stream where the events went missing.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter},
    sync::Notify,
};

use super::{
    hub::{Hub, Published},
    protocol::Response,
};

/// Which events a subscriber wants. Empty lists and `None` match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub task: Option<String>,
    pub ops: Vec<String>,
    /// Decisions (`denied`, `audited`, `allowed`); empty: all.
    pub decisions: Vec<String>,
}

impl Filter {
    #[must_use]
    pub fn matches(&self, p: &Published) -> bool {
        self.task.as_ref().is_none_or(|t| *t == p.task)
            && (self.ops.is_empty() || self.ops.iter().any(|o| o == p.op))
            && (self.decisions.is_empty() || self.decisions.iter().any(|d| d == p.decision))
    }
}

#[derive(Default)]
struct Queue {
    /// Events waiting, each with the number dropped just before it.
    items: VecDeque<(u64, Arc<Published>)>,
    /// Dropped since the last queued event.
    dropped_tail: u64,
    /// Dropped since the subscription started.
    dropped_total: u64,
}

pub struct Subscriber {
    filter: Filter,
    capacity: usize,
    queue: Mutex<Queue>,
    ready: Notify,
    closed: AtomicBool,
}

/// What the writer takes out of the queue in one go.
struct Batch {
    items: Vec<(u64, Arc<Published>)>,
    dropped_after: u64,
}

impl Subscriber {
    #[must_use]
    pub fn new(filter: Filter, capacity: usize) -> Self {
        Self {
            filter,
            capacity,
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    #[must_use]
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event without waiting; `false` if the queue was full and it was dropped.
    pub fn push(&self, event: Arc<Published>) -> bool {
        let queued = {
            let mut q = self.lock();
            if q.items.len() >= self.capacity {
                q.dropped_tail += 1;
                q.dropped_total += 1;
                false
            } else {
                let before = std::mem::take(&mut q.dropped_tail);
                q.items.push_back((before, event));
                true
            }
        };
        self.ready.notify_one();
        queued
    }

    /// Dropped for this subscriber so far.
    #[cfg(test)]
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped_total
    }

    fn take(&self) -> Batch {
        let mut q = self.lock();
        Batch {
            items: q.items.drain(..).collect(),
            dropped_after: std::mem::take(&mut q.dropped_tail),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// `{"dropped":N}\n`.
fn dropped_line(n: u64) -> String {
    format!("{{\"dropped\":{n}}}\n")
}

/// Streams to one client: the backlog first, then (with a subscriber) live events until the
/// client goes away. The subscriber is closed (and forgotten by the hub) when this returns.
pub async fn stream<R, W>(
    hub: &Hub,
    filter: Filter,
    follow: bool,
    mut read: R,
    write: W,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (backlog, subscriber) = hub.subscribe(filter, follow);
    let mut out = BufWriter::new(write);
    let mut header = serde_json::to_vec(&Response::Subscribed {
        backlog: backlog.len(),
    })
    .map_err(std::io::Error::other)?;
    header.push(b'\n');
    out.write_all(&header).await?;
    for p in &backlog {
        out.write_all(&p.line).await?;
        out.write_all(b"\n").await?;
    }
    out.flush().await?;
    let Some(subscriber) = subscriber else {
        return out.shutdown().await;
    };
    let result = follow_live(&subscriber, &mut read, &mut out).await;
    subscriber.close();
    result
}

async fn follow_live<R, W>(
    subscriber: &Subscriber,
    read: &mut R,
    out: &mut BufWriter<W>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scratch = [0u8; 64];
    loop {
        let batch = subscriber.take();
        if batch.items.is_empty() && batch.dropped_after == 0 {
            tokio::select! {
                () = subscriber.ready.notified() => continue,
                // The client sends nothing after its request: any read result means it left.
                _ = read.read(&mut scratch) => return Ok(()),
            }
        }
        for (dropped_before, p) in &batch.items {
            if *dropped_before > 0 {
                out.write_all(dropped_line(*dropped_before).as_bytes())
                    .await?;
            }
            out.write_all(&p.line).await?;
            out.write_all(b"\n").await?;
        }
        if batch.dropped_after > 0 {
            out.write_all(dropped_line(batch.dropped_after).as_bytes())
                .await?;
        }
        out.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(task: &str, op: &'static str, n: u32) -> Arc<Published> {
        Arc::new(Published {
            line: format!("{{\"n\":{n}}}").into_bytes(),
            task: task.to_owned(),
            op,
            decision: "denied",
        })
    }

    #[test]
    fn filters_by_task_and_op() {
        let f = Filter {
            task: Some("a".to_owned()),
            ops: vec!["open".to_owned(), "exec".to_owned()],
            decisions: Vec::new(),
        };
        assert!(f.matches(&event("a", "open", 0)));
        assert!(!f.matches(&event("b", "open", 0)), "other task");
        assert!(!f.matches(&event("a", "connect", 0)), "other op");
        assert!(Filter::default().matches(&event("x", "sendmsg", 0)));
    }

    #[test]
    fn filters_by_decision() {
        let f = Filter {
            decisions: vec!["denied".to_owned(), "audited".to_owned()],
            ..Filter::default()
        };
        assert!(f.matches(&event("a", "open", 0)), "denied passes");
        let allowed = Arc::new(Published {
            line: Vec::new(),
            task: "a".to_owned(),
            op: "open",
            decision: "allowed",
        });
        assert!(!f.matches(&allowed), "allowed is filtered out");
        assert!(Filter::default().matches(&allowed), "no filter: everything");
    }

    #[test]
    fn a_full_queue_drops_and_places_the_count_where_events_went_missing() {
        let s = Subscriber::new(Filter::default(), 2);
        assert!(s.push(event("a", "open", 1)));
        assert!(s.push(event("a", "open", 2)));
        assert!(
            !s.push(event("a", "open", 3)),
            "third event must be dropped"
        );
        assert!(
            !s.push(event("a", "open", 4)),
            "fourth event must be dropped"
        );
        let first = s.take();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.dropped_after, 2, "two dropped after the queued ones");
        assert!(s.push(event("a", "open", 5)));
        assert!(
            s.push(event("a", "open", 6)),
            "room again after the writer took the batch"
        );
        assert_eq!(s.dropped(), 2, "drops are counted per subscriber");
    }

    #[tokio::test]
    async fn stream_writes_backlog_then_live_events_and_drop_notices() {
        let hub = Arc::new(Hub::new(10, 1));
        hub.publish("denied", "{\"n\":1}".to_owned());
        let (client, server) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server);
        let h = Arc::clone(&hub);
        let task = tokio::spawn(async move {
            stream(&h, Filter::default(), true, server_read, server_write).await
        });
        // Wait until the subscriber is registered, then overflow its one-slot queue.
        while hub.subscribers() == 0 {
            tokio::task::yield_now().await;
        }
        for n in 2..=4 {
            hub.publish("denied", format!("{{\"n\":{n}}}"));
        }
        let (mut client_read, client_write) = tokio::io::split(client);
        let mut text = String::new();
        while text.lines().count() < 4 {
            let mut buf = [0u8; 256];
            let n = client_read
                .read(&mut buf)
                .await
                .unwrap_or_else(|e| panic!("expected to read the stream: {e}"));
            assert!(n > 0, "stream ended early after:\n{text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert_eq!(
            text,
            "{\"result\":\"subscribed\",\"backlog\":1}\n{\"n\":1}\n{\"n\":2}\n{\"dropped\":2}\n",
            "expected header, backlog, the one queued event and the drop notice"
        );
        assert_eq!(hub.subscriber_drops(), 2);
        drop(client_write);
        drop(client_read);
        let r = task
            .await
            .unwrap_or_else(|e| panic!("expected the stream task to end: {e}"));
        assert!(
            r.is_ok(),
            "expected a clean end when the client leaves: {r:?}"
        );
    }
}
