//! `corral daemon`: compiles the policies, loads the kernel programs, installs the rules, then
//! serves the control socket and streams events until SIGTERM/SIGINT.

mod instances;
pub mod protocol;
mod reload;
mod selectors;
mod server;
mod sink;
mod state;
mod tasks;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use tokio::io::unix::AsyncFd;

use crate::{
    compile::{self, CompileError, CompiledTask},
    events::{self, BootClock},
    loader::{self, LoaderError},
    policy::{self, PolicyDirError},
};

pub use sink::{Sink, SinkError};
pub use state::State;

/// What `corral daemon` was asked to do.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub policies: PathBuf,
    pub socket: PathBuf,
    pub events: PathBuf,
    pub btf: PathBuf,
    /// The Landlock ABI this kernel offers (`corral run` applies it where BPF LSM is missing).
    pub landlock_abi: Option<u32>,
    /// Where maps and links are pinned (on bpffs), to outlive the daemon.
    pub pin_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Policy(#[from] PolicyDirError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("control socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another corral daemon is already listening on {}", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("event ring buffer: {source}")]
    Events { source: std::io::Error },
    #[error("cannot start the async runtime: {source}")]
    Runtime { source: std::io::Error },
    #[error(transparent)]
    Watch(#[from] reload::WatchError),
    #[error(transparent)]
    Tasks(#[from] tasks::ApplyError),
}

impl DaemonError {
    /// sysexits-style code: 64 for configuration errors, 69 when the kernel lacks something.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Policy(_)
            | Self::Compile(_)
            | Self::Sink(_)
            | Self::Tasks(tasks::ApplyError::Compile(_) | tasks::ApplyError::IdCollision { .. }) => {
                64
            }
            Self::Loader(_) | Self::Tasks(tasks::ApplyError::Rules(_)) => 69,
            _ => 1,
        }
    }
}

/// Runs the daemon to completion.
pub fn run(config: &DaemonConfig) -> Result<(), DaemonError> {
    // Everything that can be wrong with the configuration is found before the kernel is touched.
    let policies = policy::load_policy_dir_files(&config.policies)?;
    let trial: Vec<CompiledTask> = policies
        .iter()
        .map(|(_, p)| compile::compile(0, p))
        .collect::<Result<_, _>>()?;
    compile::check_capacity(&trial)?;
    let sink = Sink::open(&config.events)?;
    // Before touching the kernel: a second daemon would take over the pinned programs.
    if std::os::unix::net::UnixStream::connect(&config.socket).is_ok() {
        return Err(DaemonError::AlreadyRunning {
            path: config.socket.clone(),
        });
    }

    let probe = loader::probe(&config.btf, config.landlock_abi);
    let pins = loader::PinDir::new(&config.pin_dir);
    let loaded = loader::load(&config.btf, &probe, &pins)?;
    let loader::Loaded {
        ebpf,
        links,
        adopted: _,
        maps,
        selectors,
        instances,
        events: ring,
        backends,
        attached,
    } = loaded;
    let cgroup_root = match loader::cgroup2_root() {
        Ok(root) => Some(root),
        Err(e) => {
            tracing::warn!("cgroup selectors cannot adopt running processes: {e:#}");
            None
        }
    };
    let modes: Vec<(String, agent_common::Mode)> = policies
        .iter()
        .map(|(_, p)| (p.name.to_string(), p.mode))
        .collect();
    let mut state = State::new(
        maps,
        selectors,
        instances,
        backends,
        attached,
        config.policies.clone(),
        cgroup_root,
    );
    // Rules first, then selectors (inside `load`): a process never joins a task whose rules are
    // not in place.
    state.load(policies)?;
    report_backends(&probe, backends, &modes);
    let state = Arc::new(Mutex::new(state));
    tracing::info!(
        tasks = modes.len(),
        policies = %config.policies.display(),
        "programs attached, policies loaded"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Runtime { source })?;
    let result = runtime.block_on(serve(config, state, ring, sink));
    // The links are pinned: the programs keep enforcing after the daemon exits, until the next
    // daemon replaces them or `corral unload` removes them.
    drop(links);
    drop(ebpf);
    result
}

/// Says, per operation and per task, what enforces it here and what cannot be enforced.
fn report_backends(
    probe: &loader::Probe,
    backends: loader::Backends,
    tasks: &[(String, agent_common::Mode)],
) {
    for (op, backend) in backends.by_op() {
        if let Some(b) = backend {
            tracing::info!(op, backend = b.as_str(), "enforcing");
        } else {
            tracing::warn!(op, "NOT enforced on this host");
        }
    }
    let unenforced = backends.unenforced();
    if unenforced.is_empty() {
        return;
    }
    tracing::warn!(why = %probe.summary(), "some operations cannot be enforced here");
    for (name, mode) in tasks {
        tracing::warn!(
            task = %name,
            mode = mode.as_str(),
            unenforced = %unenforced.join(","),
            "task cannot be fully enforced on this host: `corral run` refuses it unless the policy is in audit mode or --accept-unenforced is given"
        );
    }
}

async fn serve(
    config: &DaemonConfig,
    state: Arc<Mutex<State>>,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    sink: Sink,
) -> Result<(), DaemonError> {
    let listener = server::bind(&config.socket)?;
    // SAFETY: the `AsyncFd` owns the ring buffer, whose fd stays open and unchanged until the
    // `AsyncFd` (and with it the ring buffer) is dropped.
    let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| DaemonError::Events {
            source: e.into_parts().1,
        })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DaemonError::Runtime { source })?;
    let (policy_tx, policy_rx) = tokio::sync::mpsc::unbounded_channel();
    tracing::info!(socket = %config.socket.display(), "ready");
    let result = tokio::select! {
        r = server::accept_loop(listener, Arc::clone(&state)) => r,
        r = pump_events(ring, Arc::clone(&state), sink, policy_rx) => r,
        r = reload::watch(&config.policies, Arc::clone(&state), policy_tx) => r.map_err(DaemonError::from),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!(
        pin_dir = %config.pin_dir.display(),
        "stopping: the pinned programs keep enforcing the last policy (`corral unload` removes them)"
    );
    result
}

/// Drains the ring buffer into the sink whenever the kernel signals new records.
async fn pump_events(
    mut ring: AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>,
    state: Arc<Mutex<State>>,
    mut sink: Sink,
    mut policy_events: tokio::sync::mpsc::UnboundedReceiver<state::PolicyEvent>,
) -> Result<(), DaemonError> {
    let clock = BootClock::now();
    loop {
        let readable = tokio::select! {
            r = ring.readable_mut() => r,
            Some(ev) = policy_events.recv() => {
                let line = state::TimedPolicyEvent { time: clock.now_rfc3339(), event: ev };
                if let Err(e) = sink.write(&line) {
                    tracing::error!("{e:#}");
                }
                continue;
            }
        };
        let mut guard = readable.map_err(|source| DaemonError::Events { source })?;
        let rb = guard.get_inner_mut();
        let mut drained = true;
        for _ in 0..EVENTS_PER_TURN {
            let Some(item) = rb.next() else {
                drained = true;
                break;
            };
            drained = false;
            let record = events::parse_record(&item);
            drop(item);
            let json = record.and_then(|ev| {
                let Ok(mut state) = state.lock() else {
                    return events::to_json(&ev, &HashMap::new(), &clock, events::proc_exe);
                };
                // The kernel's record of the exec comes first: by now the pid may be reused.
                let mut json = events::to_json(&ev, state.task_names(), &clock, |tgid| {
                    state.exe_of(tgid).or_else(|| events::proc_exe(tgid))
                })?;
                (json.instance, json.parent_tasks) = state.lineage(ev.instance);
                Ok(json)
            });
            match json {
                Ok(event) => {
                    if let Err(e) = sink.write(&event) {
                        tracing::error!("{e:#}");
                    }
                }
                Err(e) => tracing::error!("dropping undecodable event: {e:#}"),
            }
        }
        if drained {
            guard.clear_ready();
        } else {
            // The readiness is kept: the rest is read on the next turn.
            drop(guard);
        }
        // A steady stream of events keeps the ring readable, so awaiting it never suspends:
        // yield after every batch, or the control socket and policy reloads would starve.
        tokio::task::yield_now().await;
    }
}

/// Ring buffer records handled before the event pump lets the daemon's other tasks run.
const EVENTS_PER_TURN: usize = 256;
