//! The DNS learning maps: where the proxy listens (`DNS_PROXY`), which tasks' DNS goes through it
//! (`DNS_LEARN`), and the intended server of each redirected socket (`DNS_ORIGINS`).

use std::{collections::BTreeSet, net::SocketAddr};

use agent_common::{DnsOrigin, DnsProxy, names};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError},
};

use super::rules::{RulesError, take, write_single};

/// Handles on `DNS_PROXY` and `DNS_LEARN`, written by the DNS loop.
pub struct DnsControl {
    proxy: Array<MapData, DnsProxy>,
    learn: HashMap<MapData, u32, u32>,
}

/// Handle on `DNS_ORIGINS`, read by the proxy.
pub struct DnsOrigins {
    origins: HashMap<MapData, u64, DnsOrigin>,
}

/// The three maps.
pub struct DnsMaps {
    pub control: DnsControl,
    pub origins: DnsOrigins,
}

impl DnsMaps {
    /// Takes the three maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, RulesError> {
        Ok(Self {
            control: DnsControl {
                proxy: take(ebpf, names::DNS_PROXY)?,
                learn: take(ebpf, names::DNS_LEARN)?,
            },
            origins: DnsOrigins {
                origins: take(ebpf, names::DNS_ORIGINS)?,
            },
        })
    }
}

impl DnsControl {
    /// Points the redirect at the proxy's IPv4 and IPv6 sockets; `None` (no proxy) makes the
    /// programs refuse the DNS of learning tasks.
    pub fn set_proxy(
        &mut self,
        v4: Option<SocketAddr>,
        v6: Option<SocketAddr>,
    ) -> Result<(), RulesError> {
        let mut entry = DnsProxy::default();
        if let Some(SocketAddr::V4(a)) = v4 {
            entry.ip4 = a.ip().octets();
            entry.port4 = a.port();
        }
        if let Some(SocketAddr::V6(a)) = v6 {
            entry.ip6 = a.ip().octets();
            entry.port6 = a.port();
        }
        write_single(&mut self.proxy, names::DNS_PROXY, entry)
    }

    /// Makes `DNS_LEARN` hold exactly `tasks` (task ids).
    pub fn set_learning(&mut self, tasks: &BTreeSet<u32>) -> Result<(), RulesError> {
        let present: Vec<u32> = self.learn.keys().filter_map(Result::ok).collect();
        for task_id in tasks {
            if !present.contains(task_id) {
                self.learn
                    .insert(task_id, 1, 0)
                    .map_err(|source| RulesError::Write {
                        map: names::DNS_LEARN,
                        task_id: *task_id,
                        source,
                    })?;
            }
        }
        for task_id in present {
            if !tasks.contains(&task_id) {
                match self.learn.remove(&task_id) {
                    Ok(()) | Err(MapError::KeyNotFound) => {}
                    Err(source) => {
                        return Err(RulesError::Write {
                            map: names::DNS_LEARN,
                            task_id,
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl DnsOrigins {
    /// The intended server of the socket with `cookie`, if a redirect recorded one.
    #[must_use]
    pub fn get(&self, cookie: u64) -> Option<DnsOrigin> {
        self.origins.get(&cookie, 0).ok()
    }
}
