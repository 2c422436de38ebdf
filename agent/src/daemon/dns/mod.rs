//! Keeps the addresses of `host` connect rules current: asks the name servers for every name the
//! loaded policies use, again before the answers' TTLs run out, and hands each change of the
//! address set to the task table, which writes the changed entries into the tasks' current rules.
//!
//! It never holds up enforcement: policies load at once (a name not resolved yet allows
//! nothing), and answers arrive in the background. Every change is an event and a log line.

mod answer;
mod book;
mod learned;
pub mod proxy;
mod proxy_tcp;
mod redirect;
mod sockdiag;
mod ttl;
mod upstream;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::mpsc, time::Instant};

use super::{State, state::PolicyEvent};
use crate::{compile::ResolvedHosts, config::DnsSection, policy::HostName};

use book::AddressBook;
use learned::LearnedBook;
pub use learned::NamePatterns;
use proxy::Learn;
pub use redirect::{Learning, redirects};
pub use sockdiag::check as check_client_lookup;
pub use upstream::UpstreamError;
use upstream::{Outcome, RESOLV_CONF, Upstream};

/// How often the wanted names are compared with the loaded policies (after a reload).
const POLL: Duration = Duration::from_millis(250);

/// The servers to ask: the configured ones, else those of /etc/resolv.conf.
pub fn servers(settings: &DnsSection) -> Result<Vec<SocketAddr>, UpstreamError> {
    if settings.servers.is_empty() {
        upstream::servers_from_resolv_conf(Path::new(RESOLV_CONF))
    } else {
        Ok(settings.servers.clone())
    }
}

/// Runs until the daemon stops. Without servers it only waits: host rules then allow nothing.
/// Answers the DNS proxy saw arrive on `learn`: their addresses for names the rules match are
/// installed before each request's `done` is answered.
pub async fn run(
    settings: DnsSection,
    state: Arc<Mutex<State>>,
    events: mpsc::UnboundedSender<PolicyEvent>,
    mut learn: mpsc::UnboundedReceiver<Learn>,
    mut learning_tasks: Learning,
) {
    let mut learned = LearnedBook::new(settings.min_ttl);
    let mut learning = true;
    // Made when a policy first names a host: a daemon without host rules never reads
    // /etc/resolv.conf. `Some(None)`: there are no servers to ask.
    let mut upstream: Option<Option<Upstream>> = None;
    let mut book = AddressBook::new(settings.min_ttl);
    // The last outcome label per name, to report a failure once, not at every retry.
    let mut last: HashMap<HostName, &'static str> = HashMap::new();
    // What the task table was last given.
    let mut installed = ResolvedHosts::new();
    loop {
        let now = Instant::now().into_std();
        let wanted = match state.lock() {
            Ok(s) => s.wanted_hosts(),
            Err(_) => return,
        };
        for name in book.want(&wanted, now) {
            tracing::info!(host = %name, "resolving a new host of a connect rule");
        }
        last.retain(|name, _| wanted.contains(name));
        if upstream.is_none() && !wanted.is_empty() {
            upstream = Some(match servers(&settings) {
                Ok(servers) => {
                    tracing::info!(?servers, "name servers for host rules");
                    Some(Upstream::new(&servers))
                }
                Err(e) => {
                    tracing::error!(
                        "{e:#}: `host` connect rules allow nothing until the daemon restarts"
                    );
                    None
                }
            });
        }
        if let Some(Some(upstream)) = &upstream {
            refresh(upstream, &mut book, &mut last, &state, &events).await;
        }
        let now = Instant::now().into_std();
        let (patterns, tasks) = match state.lock() {
            Ok(s) => (s.name_patterns(), s.learning_tasks()),
            Err(_) => return,
        };
        learning_tasks.set_tasks(tasks);
        learned.keep_matching(&patterns);
        for (name, gone) in book.expire(now).into_iter().chain(learned.expire(now)) {
            tracing::warn!(host = %name, expired = ?gone, "host addresses expired: no longer allowed");
            let _ = events.send(PolicyEvent::DnsExpired {
                host: name.to_string(),
                expired: texts(&gone),
            });
        }
        if install(&state, &book, &learned, &mut installed).is_err() {
            return;
        }
        let next = [book.next_deadline(), learned.next_deadline()]
            .into_iter()
            .flatten()
            .fold(now + POLL, std::time::Instant::min);
        tokio::select! {
            () = tokio::time::sleep_until(Instant::from_std(next)) => {}
            request = learn.recv(), if learning => match request {
                Some(request) => {
                    if learn_answer(&state, &events, &book, &mut learned, &mut installed, request).is_err() {
                        return;
                    }
                }
                None => learning = false,
            },
        }
    }
}

/// Asks again for the names that are due and records the outcomes.
async fn refresh(
    upstream: &Upstream,
    book: &mut AddressBook,
    last: &mut HashMap<HostName, &'static str>,
    state: &Mutex<State>,
    events: &mpsc::UnboundedSender<PolicyEvent>,
) {
    let due = book.due(Instant::now().into_std());
    let outcomes =
        futures_util::future::join_all(due.iter().map(|name| upstream.resolve(name))).await;
    let now = Instant::now().into_std();
    for (name, outcome) in due.iter().zip(outcomes) {
        let label = outcome.label();
        state_count(state, label);
        let previous = last.insert(name.clone(), label);
        match outcome {
            Outcome::Answer(answers) => {
                let got = book.answered(name, &answers, now);
                if !got.added.is_empty() {
                    let ttl = answers.iter().map(|(_, t)| t.as_secs()).min();
                    tracing::info!(host = %name, added = ?got.added, addresses = ?got.current, ttl, "host resolved");
                    let _ = events.send(PolicyEvent::DnsResolved {
                        host: name.to_string(),
                        added: texts(&got.added),
                        addresses: texts(&got.current),
                        ttl_secs: ttl.unwrap_or(0),
                    });
                }
                if answers.is_empty() && previous != Some(label) {
                    report_unresolved(events, name, label, "no address");
                }
            }
            Outcome::NoSuchName => {
                book.answered(name, &[], now);
                if previous != Some(label) {
                    report_unresolved(events, name, label, "no such name (NXDOMAIN)");
                }
            }
            Outcome::Failed(error) => {
                book.failed(name, now);
                if previous != Some(label) {
                    report_unresolved(events, name, label, &error);
                }
            }
        }
    }
}

/// Installs the addresses the proxy saw in one answer, then lets the proxy reply.
fn learn_answer(
    state: &Mutex<State>,
    events: &mpsc::UnboundedSender<PolicyEvent>,
    book: &AddressBook,
    learned: &mut LearnedBook,
    installed: &mut ResolvedHosts,
    request: Learn,
) -> Result<(), Poisoned> {
    let patterns = state.lock().map_err(|_| Poisoned)?.name_patterns();
    let now = Instant::now().into_std();
    for found in request.found.iter().filter(|f| patterns.matches(&f.name)) {
        let added = learned.learn(&found.name, &found.addrs, now);
        if !added.is_empty() {
            let ttl = found.addrs.iter().map(|(_, t)| t.as_secs()).min();
            tracing::info!(host = %found.name, added = ?added, ttl, "host learned from a DNS answer");
            let _ = events.send(PolicyEvent::DnsResolved {
                host: found.name.to_string(),
                added: texts(&added),
                addresses: texts(&found.addrs.iter().map(|(a, _)| *a).collect::<Vec<_>>()),
                ttl_secs: ttl.unwrap_or(0),
            });
        }
    }
    install(state, book, learned, installed)?;
    // The proxy may have given up waiting: nothing to do then.
    let _ = request.done.send(());
    Ok(())
}

/// The state lock was poisoned: the daemon is going down.
struct Poisoned;

/// Gives the task table the looked-up and learned addresses when they changed. Also when a
/// name is no longer wanted: a policy naming it again later must not be compiled with its old
/// addresses.
fn install(
    state: &Mutex<State>,
    book: &AddressBook,
    learned: &LearnedBook,
    installed: &mut ResolvedHosts,
) -> Result<(), Poisoned> {
    let mut snapshot = book.snapshot();
    learned.merge_into(&mut snapshot);
    if snapshot != *installed {
        let applied = state
            .lock()
            .map_err(|_| Poisoned)?
            .set_resolved(snapshot.clone());
        match applied {
            Ok(()) => *installed = snapshot,
            Err(e) => tracing::error!("cannot install the resolved addresses: {e:#}"),
        }
    }
    Ok(())
}

fn state_count(state: &Mutex<State>, label: &'static str) {
    if let Ok(mut s) = state.lock() {
        s.count_resolution(label);
    }
}

fn report_unresolved(
    events: &mpsc::UnboundedSender<PolicyEvent>,
    name: &HostName,
    result: &str,
    error: &str,
) {
    tracing::warn!(host = %name, result, error, "host does not resolve: its addresses stay allowed until their TTLs run out");
    let _ = events.send(PolicyEvent::DnsUnresolved {
        host: name.to_string(),
        result: result.to_owned(),
        error: error.to_owned(),
    });
}

fn texts(addrs: &[IpAddr]) -> Vec<String> {
    addrs.iter().map(ToString::to_string).collect()
}
