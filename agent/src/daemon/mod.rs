//! `corral daemon`: compiles the policies, loads the kernel programs, installs the rules, then
//! serves the control socket and streams events until SIGTERM/SIGINT.

pub mod protocol;
mod selectors;
mod server;
mod sink;
mod state;

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
}

impl DaemonError {
    /// sysexits-style code: 64 for configuration errors, 69 when the kernel lacks something.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Policy(_) | Self::Compile(_) | Self::Sink(_) => 64,
            Self::Loader(_) => 69,
            _ => 1,
        }
    }
}

/// Runs the daemon to completion.
pub fn run(config: &DaemonConfig) -> Result<(), DaemonError> {
    let policies = policy::load_policy_dir(&config.policies)?;
    let mut compiled: Vec<(String, u32, CompiledTask)> = Vec::with_capacity(policies.len());
    let landlock: HashMap<String, crate::landlock::LandlockSpec> = policies
        .iter()
        .map(|p| (p.name.to_string(), crate::landlock::spec_for(p)))
        .collect();
    for (index, p) in policies.iter().enumerate() {
        let task_id = u32::try_from(index + 1).unwrap_or(u32::MAX);
        compiled.push((p.name.to_string(), task_id, compile::compile(task_id, p)?));
    }
    let tasks: Vec<CompiledTask> = compiled.iter().map(|(_, _, t)| t.clone()).collect();
    compile::check_capacity(&tasks)?;
    let sink = Sink::open(&config.events)?;

    let probe = loader::probe(&config.btf, config.landlock_abi);
    let loaded = loader::load(&config.btf, &probe)?;
    let loader::Loaded {
        ebpf,
        mut maps,
        mut selectors,
        events: ring,
        backends,
        attached,
    } = loaded;
    for (_, task_id, task) in &compiled {
        maps.install_task(*task_id, task)
            .map_err(LoaderError::from)?;
    }
    // Rules first, then selectors: a process never joins a task whose rules are not in place.
    let ids: Vec<u32> = compiled.iter().map(|(_, id, _)| *id).collect();
    let selected_cgroups =
        selectors::install(&mut selectors, &policies, &ids).map_err(LoaderError::from)?;
    if !selected_cgroups.is_empty() {
        let root = loader::cgroup2_root().map_err(LoaderError::from)?;
        let adopted = selectors::adopt_cgroup_members(&mut maps, &root, &selected_cgroups);
        tracing::info!(adopted, "processes already in selected cgroups confined");
    }
    report_backends(&probe, backends, &compiled);
    let state = Arc::new(Mutex::new(State::new(
        maps, &compiled, backends, attached, landlock,
    )));
    tracing::info!(
        tasks = compiled.len(),
        policies = %config.policies.display(),
        "programs attached, policies loaded"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Runtime { source })?;
    let result = runtime.block_on(serve(config, state, ring, sink));
    drop(ebpf);
    result
}

/// Says, per operation and per task, what enforces it here and what cannot be enforced.
fn report_backends(
    probe: &loader::Probe,
    backends: loader::Backends,
    tasks: &[(String, u32, CompiledTask)],
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
    for (name, _, task) in tasks {
        tracing::warn!(
            task = %name,
            mode = task.mode.as_str(),
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
    tracing::info!(socket = %config.socket.display(), "ready");
    let result = tokio::select! {
        r = server::accept_loop(listener, Arc::clone(&state)) => r,
        r = pump_events(ring, Arc::clone(&state), sink) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("stopping: programs detach as the daemon exits");
    result
}

/// Drains the ring buffer into the sink whenever the kernel signals new records.
async fn pump_events(
    mut ring: AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>,
    state: Arc<Mutex<State>>,
    mut sink: Sink,
) -> Result<(), DaemonError> {
    let clock = BootClock::now();
    loop {
        let mut guard = ring
            .readable_mut()
            .await
            .map_err(|source| DaemonError::Events { source })?;
        let rb = guard.get_inner_mut();
        while let Some(item) = rb.next() {
            let record = events::parse_record(&item);
            drop(item);
            let json = record.and_then(|ev| {
                let Ok(state) = state.lock() else {
                    return events::to_json(&ev, &HashMap::new(), &clock, events::proc_exe);
                };
                // The kernel's record of the exec comes first: by now the pid may be reused.
                events::to_json(&ev, state.task_names(), &clock, |tgid| {
                    state.exe_of(tgid).or_else(|| events::proc_exe(tgid))
                })
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
        guard.clear_ready();
    }
}
