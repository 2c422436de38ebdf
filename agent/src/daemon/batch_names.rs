//! Names the event pump looks up once per ring-buffer batch (up to `EVENTS_PER_TURN` records)
//! instead of once per event: a process's executable (one `bpf(2)` look-up of `EXES`, else
//! `/proc`) and an instance's lineage (its uuid and its ancestors' task names).
//!
//! Forgotten at the start of every batch, so an exec is seen by the next batch: an event is
//! named with the executable its process had when its batch was read (as before, when each
//! event looked `EXES` up as it was delivered, not as it happened).

use std::collections::HashMap;

use crate::events::{self, ExeCache};

/// Where the names come from: the daemon's `State`.
pub trait Namer {
    /// The executable of a confined process as the kernel recorded it (`EXES`).
    fn exe_of(&self, tgid: u32) -> Option<String>;
    /// An instance's uuid and its ancestors' task names, nearest first.
    fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>);
    /// A task's name by id.
    fn task_name(&self, id: u32) -> Option<&str>;
}

impl Namer for super::State {
    fn exe_of(&self, tgid: u32) -> Option<String> {
        Self::exe_of(self, tgid)
    }

    fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>) {
        Self::lineage(self, instance)
    }

    fn task_name(&self, id: u32) -> Option<&str> {
        self.task_names().get(&id).map(String::as_str)
    }
}

/// The names of one record.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub exe: Option<&'a str>,
    pub instance: Option<&'a str>,
    pub parent_tasks: &'a [String],
}

/// `Event::comm`.
type Comm = [u8; agent_common::COMM_LEN];

/// Per-batch names, plus the `/proc` cache that outlives batches.
#[derive(Default)]
pub struct BatchNames {
    /// (tgid, comm) → executable, for this batch.
    exes: HashMap<(u32, Comm), Option<String>>,
    /// instance → (uuid, ancestors' task names), for this batch.
    lineages: HashMap<u32, (Option<String>, Vec<String>)>,
    /// `/proc` look-ups (executables of processes `EXES` does not know, parents).
    procs: ExeCache,
}

impl BatchNames {
    /// Forgets what the last batch looked up (the `/proc` cache keeps its own freshness).
    pub fn new_batch(&mut self) {
        self.exes.clear();
        self.lineages.clear();
    }

    /// The executable of `tgid` (the kernel's record first: by now the pid may be reused, the
    /// record is the process's own; else `/proc/<tgid>/exe`) and the lineage of `instance`
    /// (0: none), each looked up once per batch.
    pub fn resolve(
        &mut self,
        tgid: u32,
        comm: Comm,
        instance: u32,
        namer: &mut impl Namer,
    ) -> Resolved<'_> {
        if instance != 0 && !self.lineages.contains_key(&instance) {
            self.lineages.insert(instance, namer.lineage(instance));
        }
        let procs = &mut self.procs;
        let exe = self
            .exes
            .entry((tgid, comm))
            .or_insert_with(|| {
                namer
                    .exe_of(tgid)
                    .or_else(|| procs.get(tgid, events::proc_exe))
            })
            .as_deref();
        let (instance, parent_tasks) = self
            .lineages
            .get(&instance)
            .map_or((None, [].as_slice()), |(uuid, parents)| {
                (uuid.as_deref(), parents.as_slice())
            });
        Resolved {
            exe,
            instance,
            parent_tasks,
        }
    }

    /// The parent of `tgid` (for records whose program could not read it).
    pub fn parent(&mut self, tgid: u32) -> Option<u32> {
        self.procs.parent(tgid, events::proc_ppid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel `EXES` map (tgid → executable) and instances, counting look-ups.
    #[derive(Default)]
    struct Kernel {
        paths: HashMap<u32, String>,
        exe_look_ups: std::cell::Cell<u32>,
        lineage_look_ups: u32,
    }

    impl Namer for Kernel {
        fn exe_of(&self, tgid: u32) -> Option<String> {
            self.exe_look_ups.set(self.exe_look_ups.get() + 1);
            self.paths.get(&tgid).cloned()
        }

        fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>) {
            self.lineage_look_ups += 1;
            (Some(format!("uuid-{instance}")), vec!["outer".to_owned()])
        }

        fn task_name(&self, _id: u32) -> Option<&str> {
            None
        }
    }

    fn comm(name: &str) -> Comm {
        let mut comm = Comm::default();
        comm[..name.len()].copy_from_slice(name.as_bytes());
        comm
    }

    fn exe(names: &mut BatchNames, kernel: &mut Kernel, tgid: u32) -> Option<String> {
        names
            .resolve(tgid, comm("sh"), 0, kernel)
            .exe
            .map(str::to_owned)
    }

    #[test]
    fn one_kernel_look_up_per_process_per_batch() {
        let mut kernel = Kernel::default();
        kernel.paths.insert(7, "/usr/bin/curl".to_owned());
        let mut names = BatchNames::default();
        names.new_batch();
        for _ in 0..100 {
            assert_eq!(
                exe(&mut names, &mut kernel, 7).as_deref(),
                Some("/usr/bin/curl")
            );
        }
        assert_eq!(
            kernel.exe_look_ups.get(),
            1,
            "expected 100 events of one process to cost one EXES look-up"
        );
    }

    #[test]
    fn an_exec_is_seen_by_the_next_batch() {
        let mut kernel = Kernel::default();
        kernel.paths.insert(7, "/bin/sh".to_owned());
        let mut names = BatchNames::default();
        names.new_batch();
        assert_eq!(exe(&mut names, &mut kernel, 7).as_deref(), Some("/bin/sh"));
        // The process execs: the kernel's record changes.
        kernel.paths.insert(7, "/usr/bin/python3".to_owned());
        names.new_batch();
        assert_eq!(
            exe(&mut names, &mut kernel, 7).as_deref(),
            Some("/usr/bin/python3"),
            "expected the new executable after an exec, from the next batch on"
        );
        assert_eq!(
            kernel.exe_look_ups.get(),
            2,
            "expected one look-up per batch"
        );
    }

    #[test]
    fn an_exec_to_another_name_is_seen_within_the_batch() {
        let mut kernel = Kernel::default();
        kernel.paths.insert(7, "/usr/bin/bash".to_owned());
        let mut names = BatchNames::default();
        names.new_batch();
        let before = names.resolve(7, comm("bash"), 0, &mut kernel).exe;
        assert_eq!(before, Some("/usr/bin/bash"));
        kernel.paths.insert(7, "/usr/bin/python3".to_owned());
        let after = names.resolve(7, comm("python3"), 0, &mut kernel).exe;
        assert_eq!(
            after,
            Some("/usr/bin/python3"),
            "expected an event whose comm changed (an exec) to be looked up again"
        );
    }

    #[test]
    fn a_lineage_is_looked_up_once_per_batch_and_none_without_instance() {
        let mut kernel = Kernel::default();
        kernel.paths.insert(7, "/bin/sh".to_owned());
        let mut names = BatchNames::default();
        for _ in 0..3 {
            let resolved = names.resolve(7, comm("sh"), 5, &mut kernel);
            assert_eq!(
                resolved,
                Resolved {
                    exe: Some("/bin/sh"),
                    instance: Some("uuid-5"),
                    parent_tasks: &["outer".to_owned()],
                }
            );
        }
        assert_eq!(
            kernel.lineage_look_ups, 1,
            "expected one look-up in a batch"
        );
        let none = names.resolve(7, comm("sh"), 0, &mut kernel);
        assert_eq!(
            (none.instance, none.parent_tasks),
            (None, [].as_slice()),
            "expected no instance for id 0"
        );
        names.new_batch();
        let _ = names.resolve(7, comm("sh"), 5, &mut kernel);
        assert_eq!(
            kernel.lineage_look_ups, 2,
            "expected a new batch to look up again"
        );
    }
}
