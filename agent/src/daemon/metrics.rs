//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the daemon is alive) and
//! `/readyz` (programs attached and policies loaded). It is bound before anything is loaded,
//! so `/readyz` answers 503 until then, and it runs on a thread of its own: a scrape never
//! delays the event pump or the control socket.

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{
    State,
    hub::Hub,
    metrics_text::{self, Snapshot},
    protocol,
    run_stats::Programs,
};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a scrape reads once the daemon is ready.
pub struct Sources {
    pub state: Arc<Mutex<State>>,
    pub hub: Arc<Hub>,
    pub programs: Programs,
}

/// Shared between the daemon (which makes it ready) and the endpoint's thread.
#[derive(Default)]
pub struct Endpoint {
    sources: OnceLock<Sources>,
    /// The address served now and how to stop its thread (`None`: not serving).
    serving: Mutex<Option<(SocketAddr, Arc<tokio::sync::Notify>)>>,
    /// Configuration reloads by result, for `corral_config_reloads_total`.
    pub config_reloads: ConfigReloads,
}

/// Configuration reloads (`SIGHUP`) by result.
#[derive(Default)]
pub struct ConfigReloads {
    pub ok: std::sync::atomic::AtomicU64,
    pub error: std::sync::atomic::AtomicU64,
}

impl Endpoint {
    /// Binds `addr` and serves it on a thread of its own.
    #[cfg(test)]
    pub fn start(addr: SocketAddr) -> Result<Arc<Self>, MetricsError> {
        let endpoint = Arc::new(Self::default());
        endpoint.listen(addr)?;
        Ok(endpoint)
    }

    /// Serves `addr` from now on: binds it first, then stops serving the previous address, so
    /// a failure leaves the endpoint as it was. Nothing happens if `addr` is served already.
    pub fn listen(self: &Arc<Self>, addr: SocketAddr) -> Result<(), MetricsError> {
        if self.serving_addr() == Some(addr) {
            return Ok(());
        }
        let bind_err = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let shared = Arc::clone(self);
        let stop_thread = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("corral-metrics".to_owned())
            .spawn(move || serve(listener, &shared, &stop_thread))
            .map_err(bind_err)?;
        let old = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((addr, stop));
        if let Some((_, old_stop)) = old {
            old_stop.notify_one();
        }
        Ok(())
    }

    /// Stops serving (the address is released once its thread has seen it).
    pub fn stop(&self) {
        let old = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((_, stop)) = old {
            stop.notify_one();
        }
    }

    /// The address served now.
    #[must_use]
    pub fn serving_addr(&self) -> Option<SocketAddr> {
        self.serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(a, _)| *a)
    }

    /// Programs attached, policies loaded: `/readyz` answers 200 from now on.
    pub fn set_ready(&self, sources: Sources) {
        let _ = self.sources.set(sources);
    }

    fn respond(&self, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        match path {
            "/healthz" => (StatusCode::OK, TEXT, "ok\n".to_owned()),
            "/readyz" => match self.sources.get() {
                Some(_) => (StatusCode::OK, TEXT, "ready\n".to_owned()),
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "not ready: programs or policies not loaded yet\n".to_owned(),
                ),
            },
            "/metrics" => match self.sources.get() {
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "not ready\n".to_owned(),
                ),
                Some(sources) => match scrape(sources, &self.config_reloads) {
                    Ok(text) => (
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        text,
                    ),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e:#}\n")),
                },
            },
            _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".to_owned()),
        }
    }
}

fn scrape(
    s: &Sources,
    config_reloads: &ConfigReloads,
) -> Result<String, metrics_text::RenderError> {
    let (status, dns_resolutions, rule_maps) = {
        let state = s.state.lock().unwrap_or_else(PoisonError::into_inner);
        let status = match state.status() {
            protocol::Response::Status { status } => status,
            _ => Value::Null,
        };
        let dns: Vec<(&'static str, u64)> = ["ok", "no_records", "nxdomain", "error"]
            .into_iter()
            .map(|r| (r, state.dns_resolutions().get(r).copied().unwrap_or(0)))
            .collect();
        (status, dns, state.rule_map_entries())
    };
    let tagged: u64 = status
        .get("tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("processes").and_then(Value::as_u64))
        .sum();
    let mut maps = vec![(
        agent_common::names::TAGS,
        tagged,
        u64::from(agent_common::TAGS_MAX),
    )];
    maps.extend(rule_maps);
    let run_stats = Programs::stats_enabled().then(|| s.programs.stats());
    let policy = &status["policy"];
    let generation = policy["generation"].as_u64().unwrap_or(0);
    let reloads = [
        ("ok", policy["reloads"]["applied"].as_u64().unwrap_or(0)),
        ("error", policy["reloads"]["rejected"].as_u64().unwrap_or(0)),
    ];
    let config_reloads = [
        (
            "ok",
            config_reloads.ok.load(std::sync::atomic::Ordering::Relaxed),
        ),
        (
            "error",
            config_reloads
                .error
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    ];
    metrics_text::render(&Snapshot {
        status: &status,
        decisions: &s.hub.decisions(),
        subscriber_drops: s.hub.subscriber_drops(),
        subscribers: s.hub.subscribers() as u64,
        maps: &maps,
        generation,
        reloads: &reloads,
        run_stats: run_stats.as_deref(),
        config_reloads: &config_reloads,
        dns_resolutions: &dns_resolutions,
    })
}

fn serve(listener: TcpListener, endpoint: &Arc<Endpoint>, stop: &tokio::sync::Notify) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("metrics endpoint: cannot start its runtime: {e}");
            return;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("metrics endpoint: {e}");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = stop.notified() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics endpoint: accept: {e}");
                    continue;
                }
            };
            let endpoint = Arc::clone(endpoint);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (status, content_type, body) = endpoint.respond(req.uri().path());
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = status;
                        if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
                            response
                                .headers_mut()
                                .insert(hyper::header::CONTENT_TYPE, v);
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("metrics endpoint connection: {e}");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_metrics_wait_for_the_programs_and_policies() {
        let endpoint = Endpoint::default();
        assert_eq!(
            endpoint.respond("/healthz").0,
            StatusCode::OK,
            "alive at once"
        );
        assert_eq!(
            endpoint.respond("/readyz").0,
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready before set_ready"
        );
        assert_eq!(
            endpoint.respond("/metrics").0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(endpoint.respond("/other").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_taken_address_is_an_error_naming_it() {
        let taken = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("expected a loopback port: {e}"));
        let addr = taken
            .local_addr()
            .unwrap_or_else(|e| panic!("expected its address: {e}"));
        match Endpoint::start(addr) {
            Ok(_) => panic!("expected {addr} to be refused while taken"),
            Err(e) => assert!(
                e.to_string()
                    .starts_with(&format!("metrics endpoint {addr}: ")),
                "got {e}"
            ),
        }
    }

    #[test]
    fn listening_elsewhere_releases_the_old_address_and_stop_releases_the_new() {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap_or_else(|e| panic!("expected a free loopback port: {e}"))
        };
        let (a, b) = (free(), free());
        let endpoint = Endpoint::start(a).unwrap_or_else(|e| panic!("expected to serve {a}: {e}"));
        assert_eq!(endpoint.serving_addr(), Some(a));
        endpoint
            .listen(b)
            .unwrap_or_else(|e| panic!("expected to serve {b}: {e}"));
        assert_eq!(endpoint.serving_addr(), Some(b));
        let released = |addr| {
            (0..100).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                TcpListener::bind(addr).is_ok()
            })
        };
        assert!(released(a), "expected {a} released after moving to {b}");
        assert!(TcpListener::bind(b).is_err(), "expected {b} still served");
        endpoint.stop();
        assert_eq!(endpoint.serving_addr(), None);
        assert!(released(b), "expected {b} released after stop");
    }
}
