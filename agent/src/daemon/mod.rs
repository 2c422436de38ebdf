//! `corral daemon`: compiles the policies, loads the kernel programs, installs the rules, then
//! serves the control socket and streams events until SIGTERM/SIGINT.

mod batch_names;
mod config_reload;
mod dns;
mod hub;
mod identities;
mod instances;
mod metrics;
mod metrics_text;
mod notify;
mod pipeline;
pub mod protocol;
mod reload;
mod rotating;
mod run_stats;
mod selectors;
mod server;
mod sink;
mod state;
mod subscriber;
mod tasks;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use tokio::io::unix::AsyncFd;

use crate::{
    compile::{self, CompileError, CompiledTask},
    events::BootClock,
    loader::{self, LoaderError},
    policy::{self, PolicyDirError, TaskPolicy},
};

pub use batch_names::Namer;
pub use config_reload::{ConfigSource, LogFilter};
pub use dns::check_client_lookup;
pub use hub::Hub;
pub use pipeline::Delivery;
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
    /// `corral.toml` with the explicit flags applied: the event sinks, subscribers, metrics.
    pub settings: crate::config::Config,
    /// Where `settings` came from, re-read on `SIGHUP`.
    pub source: ConfigSource,
    /// Changes the log filter on a reload (`None`: `CORRAL_LOG` fixes it).
    pub log_filter: Option<LogFilter>,
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
    #[error(transparent)]
    Hangup(#[from] config_reload::HangupError),
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
/// The policies of `dir` and the self-test task, compiled once as a trial: everything that can
/// be wrong with the configuration is found before the kernel is touched.
fn read_policies(dir: &Path) -> Result<Vec<(PathBuf, TaskPolicy)>, DaemonError> {
    let mut policies = policy::load_policy_dir_files(dir)?;
    policies.extend(policy::selftest_task::for_this_binary());
    let trial: Vec<CompiledTask> = policies
        .iter()
        .map(|(_, p)| compile::compile(0, p))
        .collect::<Result<_, _>>()?;
    compile::check_capacity(&trial)?;
    Ok(policies)
}

pub fn run(config: &DaemonConfig) -> Result<(), DaemonError> {
    // Before the first kernel BTF parse: keeps loading's resident peak down (see the function).
    loader::map_large_blocks();
    // Bound first so /readyz answers 503 while the programs load; reported once loaded, so a
    // refusal to start stays the one line `corral: <message>`.
    let endpoint = Arc::new(metrics::Endpoint::default());
    let listen_error = start_metrics(&endpoint, &config.settings.metrics);
    let policies = read_policies(&config.policies)?;
    let sinks = Sink::open_all(&config.settings.events)?;
    let hub = Arc::new(hub::Hub::new(
        config.settings.events.backlog,
        config.settings.events.subscriber_queue,
    ));
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
        settings: settings_map,
        dns: dns_maps,
        events: ring,
        backends,
        attached,
        open_cache,
    } = loaded;
    let dns_maps = (dns_maps, dns::redirects(&attached));
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
        state::Enforcement {
            backends,
            attached,
            open_cache,
        },
        config.policies.clone(),
        cgroup_root,
    );
    // Rules first, then selectors (inside `load`): a process never joins a task whose rules are
    // not in place.
    state.load(policies)?;
    report_backends(&probe, backends, &modes);
    let programs = run_stats::Programs::of(&ebpf);
    let state = Arc::new(Mutex::new(state));
    endpoint.set_ready(metrics::Sources {
        state: Arc::clone(&state),
        hub: Arc::clone(&hub),
        programs,
    });
    match (&listen_error, config.settings.metrics.enabled) {
        (None, true) => tracing::info!(
            addr = %config.settings.metrics.listen,
            "metrics endpoint serving /metrics, /healthz, /readyz"
        ),
        (Some(e), _) => tracing::error!("{e:#}; running without metrics, /healthz and /readyz"),
        (None, false) => {}
    }
    let (sinks_tx, sinks_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut live = config_reload::Live {
        source: config.source.clone(),
        running: config.settings.clone(),
        settings: settings_map,
        hub: Arc::clone(&hub),
        endpoint: Arc::clone(&endpoint),
        sinks: sinks_tx,
        log_filter: config.log_filter.clone(),
    };
    live.apply_kernel_settings().map_err(LoaderError::from)?;
    tracing::info!(
        tasks = modes.len(),
        policies = %config.policies.display(),
        "programs attached, policies loaded"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Runtime { source })?;
    let serving = serve(config, state, ring, (sinks, sinks_rx), hub, live, dns_maps);
    let result = runtime.block_on(serving);
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
    (sinks, new_sinks): (Vec<Sink>, tokio::sync::mpsc::UnboundedReceiver<Vec<Sink>>),
    hub: Arc<hub::Hub>,
    live: config_reload::Live,
    (dns_maps, dns_redirect): (loader::DnsMaps, bool),
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Answers seen by the DNS proxy, to learn from (`dns::proxy`).
    let (learn_tx, learn_rx) = tokio::sync::mpsc::unbounded_channel();
    let learning = dns::Learning::start(dns_maps, learn_tx, dns_redirect).await;
    tracing::info!(socket = %config.socket.display(), "ready");
    notify::ready();
    let pump = pump_events(
        ring,
        Arc::clone(&state),
        sinks,
        hub.clone(),
        policy_rx,
        stop_rx,
        new_sinks,
    );
    tokio::pin!(pump);
    let mut pump_done = false;
    let result = tokio::select! {
        r = server::accept_loop(listener, Arc::clone(&state), Arc::clone(&hub)) => r,
        r = &mut pump => {
            pump_done = true;
            r
        }
        () = dns::run(config.settings.dns.clone(), Arc::clone(&state), policy_tx.clone(), learn_rx, learning) => Ok(()),
        r = reload::watch(&config.policies, Arc::clone(&state), policy_tx) => r.map_err(DaemonError::from),
        r = config_reload::watch(live) => r.map_err(DaemonError::from),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    notify::stopping();
    if !pump_done {
        // Drain: what the kernel queued before the stop still reaches the sinks.
        let _ = stop_tx.send(true);
        if tokio::time::timeout(DRAIN_FOR, &mut pump).await.is_err() {
            tracing::warn!("events still queued after {DRAIN_FOR:?}: the next daemon reads them");
        }
    }
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
    sinks: Vec<Sink>,
    hub: Arc<hub::Hub>,
    mut policy_events: tokio::sync::mpsc::UnboundedReceiver<state::PolicyEvent>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut new_sinks: tokio::sync::mpsc::UnboundedReceiver<Vec<Sink>>,
) -> Result<(), DaemonError> {
    let clock = BootClock::now();
    let mut out = Delivery::new(clock, sinks);
    let mut woke_at = std::time::Instant::now();
    loop {
        let readable = tokio::select! {
            r = ring.readable_mut() => r,
            _ = stop.changed() => {
                // Stopping: whatever the kernel queued goes out now, without waiting.
                let rb = ring.get_mut();
                out.begin_batch();
                while let Some(item) = rb.next() {
                    out.record(&item, &state, &hub);
                }
                out.end_batch();
                return Ok(());
            }
            Some(replacement) = new_sinks.recv() => {
                // A configuration reload opened these; the old ones close here, after their
                // last line.
                out.replace_sinks(replacement);
                continue;
            }
            Some(ev) = policy_events.recv() => {
                let line = state::TimedPolicyEvent { time: clock.now_rfc3339(), event: ev };
                match serde_json::to_vec(&line) {
                    Ok(mut bytes) => {
                        bytes.push(b'\n');
                        out.write_line(&bytes);
                        out.flush();
                    }
                    Err(e) => tracing::error!("cannot encode a policy event: {e}"),
                }
                continue;
            }
        };
        let mut guard = readable.map_err(|source| DaemonError::Events { source })?;
        // Woken again within `COALESCE` of the last wake-up: a busy stream (see below).
        let busy = woke_at.elapsed() < COALESCE;
        woke_at = std::time::Instant::now();
        let rb = guard.get_inner_mut();
        let mut drained = true;
        out.begin_batch();
        for _ in 0..EVENTS_PER_TURN {
            let Some(item) = rb.next() else {
                drained = true;
                break;
            };
            drained = false;
            out.record(&item, &state, &hub);
            drop(item);
            // Let the subscribers' writers run between events: on this one-thread runtime a
            // burst would otherwise fill every subscriber's queue before any of them is written.
            if hub.has_subscribers() {
                tokio::task::yield_now().await;
            }
        }
        // One write per sink for the whole batch.
        out.end_batch();
        if drained {
            guard.clear_ready();
            if busy {
                // Woken more than once per `COALESCE`: let the next records gather in the ring
                // for a moment instead of being woken for every few of them. While the ring is
                // not drained, the kernel's submit does not wake the daemon, so a busy stream
                // costs about two wake-ups per `COALESCE` (this one and the timer's) however
                // many records it carries. A lone record is still read at once.
                drop(guard);
                tokio::time::sleep(COALESCE).await;
            }
        } else {
            // The readiness is kept: the rest is read on the next turn.
            drop(guard);
        }
        // A steady stream of events keeps the ring readable, so awaiting it never suspends:
        // yield after every batch, or the control socket and policy reloads would starve.
        tokio::task::yield_now().await;
    }
}

/// How long a stopping daemon keeps draining queued events into the sinks.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Ring buffer records handled before the event pump lets the daemon's other tasks run.
const EVENTS_PER_TURN: usize = 256;
/// The longest a record waits in the ring when the stream is busy (see `pump_events`): the
/// latency bought back as CPU. The 4 MiB ring holds about 20 000 records, 40 ms of a 500 000
/// events/s stream.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);
/// Serves the metrics endpoint, if enabled; returns why it cannot. Failing to serve metrics
/// (address in use, say) does not stop the daemon: enforcement matters more than its
/// observation.
fn start_metrics(
    endpoint: &Arc<metrics::Endpoint>,
    settings: &crate::config::MetricsSection,
) -> Option<metrics::MetricsError> {
    if settings.enabled {
        endpoint.listen(settings.listen).err()
    } else {
        None
    }
}
