//! The daemon's per-record path, from a ring-buffer record to the sinks and the hub: decode
//! the record in place, name its task, instance and executable (once per batch), write its JSON
//! line, queue the line in every sink and publish it; after a batch, one write per sink. The
//! event pump drives it with the kernel's records; `corral-bench pipeline` (the daemon's
//! capacity without the kernel producer) with recorded ones, through the same functions.

use std::{fmt::Write as _, sync::Mutex};

use super::{
    batch_names::{BatchNames, Namer},
    hub::{Hub, Published},
    sink::Sink,
};
use crate::events::{self, BootClock, Record};

/// The state of the per-record path between records: the clock, the batch's names, the sinks.
pub struct Delivery {
    clock: BootClock,
    names: BatchNames,
    sinks: Vec<Sink>,
}

impl Delivery {
    #[must_use]
    pub fn new(clock: BootClock, sinks: Vec<Sink>) -> Self {
        Self {
            clock,
            names: BatchNames::default(),
            sinks,
        }
    }

    /// Handles a batch of records: `begin_batch`, `record` each, `end_batch`. Returns how many
    /// records were handed over.
    pub fn batch<'r, N: Namer>(
        &mut self,
        records: impl IntoIterator<Item = &'r [u8]>,
        state: &Mutex<N>,
        hub: &Hub,
    ) -> usize {
        self.begin_batch();
        let mut n = 0;
        for bytes in records {
            self.record(bytes, state, hub);
            n += 1;
        }
        self.end_batch();
        n
    }

    /// Starts a batch: the names looked up for the last one are forgotten.
    pub fn begin_batch(&mut self) {
        self.names.new_batch();
    }

    /// Ends a batch: what the sinks queued is written.
    pub fn end_batch(&mut self) {
        self.flush();
    }

    /// Decodes one ring buffer record, names its task, instance and executable, queues its
    /// line in every sink and publishes it to the hub.
    pub fn record<N: Namer>(&mut self, bytes: &[u8], state: &Mutex<N>, hub: &Hub) {
        let rec = match events::parse_record(bytes) {
            Ok(rec) => rec,
            Err(e) => {
                tracing::error!("dropping undecodable event: {e:#}");
                return;
            }
        };
        let mut published = hub.spare();
        let mut line = std::mem::take(&mut published.line);
        let batch = &mut self.names;
        let parent = (rec.ppid() == 0)
            .then(|| batch.parent(rec.tgid()))
            .flatten();
        let written = if let Ok(mut state) = state.lock() {
            let resolved = batch.resolve(rec.tgid(), rec.comm(), rec.instance(), &mut *state);
            let task = state.task_name(rec.task_id());
            match task {
                Some(task) => published.task.push_str(task),
                None => {
                    let _ = write!(published.task, "unknown-task-{}", rec.task_id());
                }
            }
            let known = events::Names {
                task,
                instance: resolved.instance,
                parent_tasks: resolved.parent_tasks,
                exe: resolved.exe,
                parent,
            };
            events::write_line(&rec, &known, &self.clock, &mut line)
        } else {
            let _ = write!(published.task, "unknown-task-{}", rec.task_id());
            let exe = events::proc_exe(rec.tgid());
            let unknown = events::Names {
                exe: exe.as_deref(),
                parent,
                ..events::Names::default()
            };
            events::write_line(&rec, &unknown, &self.clock, &mut line)
        };
        if let Err(e) = written {
            tracing::error!("dropping undecodable event: {e:#}");
            return;
        }
        self.publish(line, published, &rec, hub);
    }

    /// Queues one event's line (`line`, without `\n`) in every sink (written whole by the next
    /// `flush`), then hands it to the hub (live subscribers, backlog, per-task counts), which
    /// never waits. `published` carries the task name; it gets the line, op and decision.
    fn publish(&mut self, mut line: Vec<u8>, mut published: Published, rec: &Record, hub: &Hub) {
        line.push(b'\n');
        queue_line(&mut self.sinks, &line);
        line.pop();
        published.line = line;
        // The codes decoded when the line was written.
        published.op = agent_common::Op::try_from(rec.op()).map_or("", agent_common::Op::as_str);
        published.decision = agent_common::Decision::try_from(rec.decision())
            .map_or("", agent_common::Decision::as_str);
        hub.publish_line(published);
    }

    /// Queues one line (ending in `\n`) in every sink.
    pub fn write_line(&mut self, line: &[u8]) {
        queue_line(&mut self.sinks, line);
    }

    /// Writes what the sinks queued.
    pub fn flush(&mut self) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.flush() {
                tracing::error!("{e:#}");
            }
        }
    }

    /// Sinks a configuration reload opened; the old ones are flushed and closed here.
    pub fn replace_sinks(&mut self, sinks: Vec<Sink>) {
        self.flush();
        self.sinks = sinks;
    }
}

fn queue_line(sinks: &mut [Sink], line: &[u8]) {
    for sink in sinks {
        if let Err(e) = sink.write_line(line) {
            tracing::error!("{e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use agent_common::{Backend, Decision, Event, Mode, Op, Proto, Reason};

    use super::*;
    use crate::{
        config::EventsSection,
        daemon::subscriber::Filter,
        events::{Names, event_bytes},
    };

    /// Task 7 is `coder`; process 42 runs `/usr/bin/curl`; instance 3 has a parent task.
    struct Known;

    impl Namer for Known {
        fn exe_of(&self, tgid: u32) -> Option<String> {
            (tgid == 42).then(|| "/usr/bin/curl".to_owned())
        }

        fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>) {
            (Some(format!("uuid-{instance}")), vec!["outer".to_owned()])
        }

        fn task_name(&self, id: u32) -> Option<&str> {
            (id == 7).then_some("coder")
        }
    }

    fn connect(port: u32, task_id: u32) -> Event {
        // SAFETY: `Event` is plain integers; all-zero is valid.
        let mut ev: Event = unsafe { std::mem::zeroed() };
        ev.op = Op::Connect as u32;
        ev.decision = Decision::Denied as u32;
        ev.mode = Mode::Enforce as u32;
        ev.reason = Reason::NotAllowed as u32;
        ev.backend = Backend::CgroupSockAddr as u32;
        ev.task_id = task_id;
        ev.tgid = 42;
        ev.pid = 42;
        ev.ppid = 1;
        ev.instance = 3;
        ev.family = 2;
        ev.proto = Proto::Tcp as u32;
        ev.port = port;
        ev.addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        ev.comm[..4].copy_from_slice(b"curl");
        ev
    }

    #[test]
    fn a_batch_reaches_the_file_and_the_hub_as_the_line_writer_writes_it() {
        let dir = std::env::temp_dir().join(format!("corral-delivery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("expected a scratch dir: {e}"));
        let file = dir.join("events.json");
        let section = EventsSection {
            stdout: false,
            file: Some(file.clone()),
            ..EventsSection::default()
        };
        let sinks = Sink::open_all(&section).unwrap_or_else(|e| panic!("expected a sink: {e}"));
        let hub = Hub::new(10, 4);
        let clock = BootClock::fixed(1_795_000_000_000_000_000);
        let mut delivery = Delivery::new(clock, sinks);
        let events = [connect(443, 7), connect(80, 9)];
        let head = agent_common::EVENT_HEAD_SIZE;
        let records: Vec<&[u8]> = vec![
            &event_bytes(&events[0])[..head],
            // Too short to be a record: dropped, the others still go out.
            &event_bytes(&events[0])[..head - 8],
            &event_bytes(&events[1])[..head],
        ];
        let handed = delivery.batch(records, &Mutex::new(Known), &hub);
        assert_eq!(handed, 3, "expected every record handed over");
        let parents = vec!["outer".to_owned()];
        let expected: Vec<String> = events
            .iter()
            .map(|ev| {
                let names = Names {
                    task: (ev.task_id == 7).then_some("coder"),
                    instance: Some("uuid-3"),
                    parent_tasks: &parents,
                    exe: Some("/usr/bin/curl"),
                    parent: None,
                };
                let mut line = Vec::new();
                events::write_line(&Record::of_event(ev, 0), &names, &clock, &mut line)
                    .unwrap_or_else(|e| panic!("expected a line: {e}"));
                String::from_utf8(line).unwrap_or_else(|e| panic!("expected UTF-8: {e}"))
            })
            .collect();
        let written = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            written.lines().collect::<Vec<_>>(),
            expected,
            "expected the two lines in the file after the batch"
        );
        let (backlog, _) = hub.subscribe(Filter::default(), false);
        let published: Vec<(&[u8], &str, &str, &str)> = backlog
            .iter()
            .map(|p| (p.line.as_slice(), p.task.as_str(), p.op, p.decision))
            .collect();
        assert_eq!(
            published,
            [
                (expected[0].as_bytes(), "coder", "connect", "denied"),
                (
                    expected[1].as_bytes(),
                    "unknown-task-9",
                    "connect",
                    "denied"
                ),
            ],
            "expected both events published with their task, op and decision"
        );
        drop(delivery);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
