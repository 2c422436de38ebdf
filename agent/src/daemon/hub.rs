//! Fans each event out to the live subscribers of the control socket and keeps the recent
//! ones (the backlog `corral events` shows) and the per-task decision counts (metrics).
//! Publishing never waits: a subscriber whose queue is full loses the event, and the loss is
//! counted.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use super::subscriber::{Filter, Subscriber};
use crate::events::JsonEvent;

/// One event as it was sent: its JSON line (without `\n`) and what filters look at.
#[derive(Debug)]
pub struct Published {
    pub line: String,
    pub task: String,
    pub op: &'static str,
}

/// `(task, op, decision)` → events seen.
pub type DecisionCounts = BTreeMap<(String, &'static str, &'static str), u64>;

struct Inner {
    backlog: VecDeque<Arc<Published>>,
    subscribers: Vec<Arc<Subscriber>>,
    /// task → `(op, decision)` → events seen.
    decisions: BTreeMap<String, BTreeMap<(&'static str, &'static str), u64>>,
}

/// Shared by the event pump (publishes) and the control socket (subscribes).
pub struct Hub {
    inner: Mutex<Inner>,
    backlog_max: usize,
    queue_max: usize,
    /// Events dropped for subscribers that did not keep up, all subscribers together.
    subscriber_drops: AtomicU64,
}

impl Hub {
    #[must_use]
    pub fn new(backlog_max: usize, queue_max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                backlog: VecDeque::with_capacity(backlog_max.min(4096)),
                subscribers: Vec::new(),
                decisions: BTreeMap::new(),
            }),
            backlog_max,
            queue_max: queue_max.max(1),
            subscriber_drops: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop events: the data stays usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an event and hands it to every subscriber whose filter it passes.
    pub fn publish(&self, event: &JsonEvent, line: String) {
        let published = Arc::new(Published {
            line,
            task: event.task.clone(),
            op: event.op,
        });
        let mut inner = self.lock();
        // Counted in place: no key is built for a combination already seen.
        if let Some(n) = inner
            .decisions
            .get_mut(event.task.as_str())
            .and_then(|per_task| per_task.get_mut(&(event.op, event.decision)))
        {
            *n += 1;
        } else {
            *inner
                .decisions
                .entry(event.task.clone())
                .or_default()
                .entry((event.op, event.decision))
                .or_default() += 1;
        }
        if self.backlog_max > 0 {
            if inner.backlog.len() >= self.backlog_max {
                inner.backlog.pop_front();
            }
            inner.backlog.push_back(Arc::clone(&published));
        }
        inner.subscribers.retain(|s| !s.is_closed());
        for s in &inner.subscribers {
            if s.filter().matches(&published) && !s.push(Arc::clone(&published)) {
                self.subscriber_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The backlog events `filter` passes, and (with `follow`) a subscriber registered in the
    /// same step, so that no event is missed or seen twice between the two.
    pub fn subscribe(
        &self,
        filter: Filter,
        follow: bool,
    ) -> (Vec<Arc<Published>>, Option<Arc<Subscriber>>) {
        let mut inner = self.lock();
        let backlog = inner
            .backlog
            .iter()
            .filter(|p| filter.matches(p))
            .cloned()
            .collect();
        let subscriber = follow.then(|| {
            let s = Arc::new(Subscriber::new(filter, self.queue_max));
            inner.subscribers.push(Arc::clone(&s));
            s
        });
        (backlog, subscriber)
    }

    /// Events counted per task, operation and decision since the daemon started.
    #[must_use]
    pub fn decisions(&self) -> DecisionCounts {
        self.lock()
            .decisions
            .iter()
            .flat_map(|(task, counts)| {
                counts
                    .iter()
                    .map(move |(&(op, decision), &n)| ((task.clone(), op, decision), n))
            })
            .collect()
    }

    /// Events dropped for slow subscribers since the daemon started.
    #[must_use]
    pub fn subscriber_drops(&self) -> u64 {
        self.subscriber_drops.load(Ordering::Relaxed)
    }

    /// Whether anyone follows the stream (closed subscribers are forgotten on the next
    /// publish).
    #[must_use]
    pub fn has_subscribers(&self) -> bool {
        !self.lock().subscribers.is_empty()
    }

    /// Live subscribers now.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        let mut inner = self.lock();
        inner.subscribers.retain(|s| !s.is_closed());
        inner.subscribers.len()
    }
}
