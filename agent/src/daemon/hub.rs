//! Fans each event out to the live subscribers of the control socket and keeps the recent
//! ones (the backlog `corral events` shows) and the per-task decision counts (metrics).
//! Publishing never waits: a subscriber whose queue is full loses the event, and the loss is
//! counted.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use super::subscriber::{Filter, Subscriber};

/// One event as it was sent: its JSON line (without `\n`) and what filters look at.
#[derive(Debug)]
pub struct Published {
    /// UTF-8 (the line writer writes nothing else), kept as bytes: subscribers write them out.
    pub line: Vec<u8>,
    pub task: String,
    pub op: &'static str,
    pub decision: &'static str,
}

/// `(task, op, decision)` → events seen.
pub type DecisionCounts = BTreeMap<(String, &'static str, &'static str), u64>;

struct Inner {
    backlog: VecDeque<Arc<Published>>,
    subscribers: Vec<Arc<Subscriber>>,
    /// task → `(op, decision)` → events seen.
    decisions: BTreeMap<String, BTreeMap<(&'static str, &'static str), u64>>,
    /// Events that left the backlog and nobody else held, kept to be filled again (their
    /// strings keep their capacity: a steady stream allocates nothing per event).
    spares: Vec<Published>,
}

/// Spare events kept at most.
const SPARES_MAX: usize = 64;

/// Shared by the event pump (publishes) and the control socket (subscribes).
pub struct Hub {
    inner: Mutex<Inner>,
    /// `events.backlog`; changed by a configuration reload.
    backlog_max: AtomicUsize,
    /// `events.subscriber_queue` of subscribers that join from now on.
    queue_max: AtomicUsize,
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
                spares: Vec::new(),
            }),
            backlog_max: AtomicUsize::new(backlog_max),
            queue_max: AtomicUsize::new(queue_max.max(1)),
            subscriber_drops: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop events: the data stays usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `line` as an `open` event of task `t` (tests).
    #[cfg(test)]
    pub fn publish(&self, decision: &'static str, line: String) {
        self.publish_line(Published {
            line: line.into_bytes(),
            task: "t".to_owned(),
            op: "open",
            decision,
        });
    }

    /// An empty event to fill and hand to `publish_line`: one that left the backlog if any
    /// (its strings keep their capacity), else a new one.
    pub fn spare(&self) -> Published {
        let mut spare = self.lock().spares.pop().unwrap_or_else(|| Published {
            line: Vec::with_capacity(512),
            task: String::new(),
            op: "",
            decision: "",
        });
        spare.line.clear();
        spare.task.clear();
        spare
    }

    /// Records an event (`line` without `\n`) and hands it to every subscriber whose filter
    /// it passes.
    pub fn publish_line(&self, published: Published) {
        let event = &published;
        let mut inner = self.lock();
        // Allowed decisions are counted by the kernel (`corral_decisions_total{task=""}`); their
        // events may be sampled, so they are not counted again here.
        if event.decision != agent_common::Decision::Allowed.as_str() {
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
        }
        let published = Arc::new(published);
        let backlog_max = self.backlog_max.load(Ordering::Relaxed);
        if backlog_max > 0 {
            while inner.backlog.len() >= backlog_max {
                if let Some(Ok(old)) = inner.backlog.pop_front().map(Arc::try_unwrap) {
                    if inner.spares.len() < SPARES_MAX {
                        inner.spares.push(old);
                    }
                }
            }
            inner.backlog.push_back(Arc::clone(&published));
        } else {
            inner.backlog.clear();
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
            let s = Arc::new(Subscriber::new(
                filter,
                self.queue_max.load(Ordering::Relaxed),
            ));
            inner.subscribers.push(Arc::clone(&s));
            s
        });
        (backlog, subscriber)
    }

    /// New limits from a configuration reload: the backlog is trimmed at the next event;
    /// subscribers that join from now on get the new queue length.
    pub fn set_limits(&self, backlog_max: usize, queue_max: usize) {
        self.backlog_max.store(backlog_max, Ordering::Relaxed);
        self.queue_max.store(queue_max.max(1), Ordering::Relaxed);
    }

    /// Denied and audited events counted per task, operation and decision since the daemon
    /// started (allowed events are not: the kernel counts allowed decisions).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_events_are_published_but_not_counted_again() {
        let hub = Hub::new(10, 4);
        hub.publish("allowed", "a".to_owned());
        hub.publish("denied", "d".to_owned());
        let counts = hub.decisions();
        assert_eq!(
            counts.get(&("t".to_owned(), "open", "denied")),
            Some(&1),
            "denied events are counted per task"
        );
        assert!(
            !counts.keys().any(|(_, _, d)| *d == "allowed"),
            "allowed events must not be counted (the kernel counts them): {counts:?}"
        );
        let (backlog, _) = hub.subscribe(Filter::default(), false);
        assert_eq!(backlog.len(), 2, "both events are in the backlog");
    }

    #[test]
    fn events_leaving_a_full_backlog_are_reused_empty() {
        let hub = Hub::new(2, 4);
        for n in 0..3 {
            let mut p = hub.spare();
            p.line.extend_from_slice("x".repeat(1000 + n).as_bytes());
            p.task.push('t');
            p.op = "open";
            p.decision = "denied";
            hub.publish_line(p);
        }
        let spare = hub.spare();
        assert!(
            spare.line.is_empty() && spare.task.is_empty(),
            "expected a spare event to come back empty"
        );
        assert!(
            spare.line.capacity() >= 1000,
            "expected the evicted event's line buffer reused, capacity {}",
            spare.line.capacity()
        );
        let (backlog, _) = hub.subscribe(Filter::default(), false);
        assert_eq!(backlog.len(), 2, "expected the backlog to keep 2 events");
        assert_eq!(
            hub.decisions().get(&("t".to_owned(), "open", "denied")),
            Some(&3),
            "expected every published event counted"
        );
    }

    #[test]
    fn new_limits_trim_the_backlog_and_size_new_subscribers() {
        let hub = Hub::new(10, 4);
        for n in 0..6 {
            hub.publish("denied", format!("{n}"));
        }
        hub.set_limits(2, 1);
        hub.publish("denied", "6".to_owned());
        let (backlog, sub) = hub.subscribe(Filter::default(), true);
        let lines: Vec<&[u8]> = backlog.iter().map(|p| p.line.as_slice()).collect();
        assert_eq!(lines, [b"5", b"6"], "the backlog keeps the 2 newest");
        let sub = sub.unwrap_or_else(|| panic!("expected a follower"));
        assert!(sub.push(backlog[0].clone()), "room for one");
        assert!(
            !sub.push(backlog[1].clone()),
            "a queue of 1 is full after one"
        );
        hub.set_limits(0, 1);
        hub.publish("denied", "7".to_owned());
        let (backlog, _) = hub.subscribe(Filter::default(), false);
        assert!(backlog.is_empty(), "a backlog of 0 keeps nothing");
    }
}
