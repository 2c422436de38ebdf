//! Builds `TaskPolicy` YAML for tests, so each test states its allow-list in a few lines.

use std::fmt::Write;

use crate::env;
use crate::runtime;

/// One `network.connect` rule.
struct ConnectRule {
    /// `cidr` or `host`.
    key: &'static str,
    /// The network or the DNS name.
    cidr: String,
    /// `None`: every port (the `ports` key is left out).
    ports: Option<Vec<String>>,
}

/// A task policy under construction. Sections with no entries are left out of the YAML, which the
/// contract reads as "nothing of that kind allowed".
pub struct Policy {
    name: String,
    mode: Option<&'static str>,
    exec: Vec<String>,
    read: Vec<String>,
    write: Vec<String>,
    deny: Vec<String>,
    connect: Vec<ConnectRule>,
    unix: Vec<String>,
    select_executables: Vec<String>,
    select_cgroups: Vec<String>,
    subtasks: Vec<String>,
    privileges: Vec<String>,
}

impl Policy {
    /// An empty policy: nothing allowed, mode left to the default (enforce).
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            mode: None,
            exec: Vec::new(),
            read: Vec::new(),
            write: Vec::new(),
            deny: Vec::new(),
            connect: Vec::new(),
            unix: Vec::new(),
            select_executables: Vec::new(),
            select_cgroups: Vec::new(),
            subtasks: Vec::new(),
            privileges: Vec::new(),
        }
    }

    /// A policy under which `corral run -- $CORRAL_PROBE ...` can start: the probe may be
    /// executed and the files its loader maps (and `/etc/ld.so.cache`) may be read. Nothing else.
    #[must_use]
    pub fn probe_only(name: &str) -> Self {
        let mut p = Self::new(name).exec(&env::probe()).read(&env::probe());
        for path in runtime::probe_runtime_reads() {
            p = p.read(&path);
        }
        p
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `spec.mode: audit`.
    #[must_use]
    pub fn audit(mut self) -> Self {
        self.mode = Some("audit");
        self
    }

    /// `spec.mode: enforce`, written out explicitly.
    #[must_use]
    pub fn enforce(mut self) -> Self {
        self.mode = Some("enforce");
        self
    }

    /// Adds an `exec.allow` entry.
    #[must_use]
    pub fn exec(mut self, path: &str) -> Self {
        push_unique(&mut self.exec, path);
        self
    }

    /// Adds a `files.read` entry.
    #[must_use]
    pub fn read(mut self, path: &str) -> Self {
        push_unique(&mut self.read, path);
        self
    }

    /// Adds a `files.write` entry.
    #[must_use]
    pub fn write(mut self, path: &str) -> Self {
        push_unique(&mut self.write, path);
        self
    }

    /// Adds a `files.deny` entry.
    #[must_use]
    pub fn deny(mut self, path: &str) -> Self {
        push_unique(&mut self.deny, path);
        self
    }

    /// Adds a `network.connect` rule limited to `ports` (each `"443"` or `"9000-9100"`).
    #[must_use]
    pub fn connect(mut self, cidr: &str, ports: &[&str]) -> Self {
        self.connect.push(ConnectRule {
            key: "cidr",
            cidr: cidr.to_owned(),
            ports: Some(ports.iter().map(|p| (*p).to_owned()).collect()),
        });
        self
    }

    /// Adds a `network.connect` rule for the DNS name `host`, limited to `ports`.
    #[must_use]
    pub fn connect_host(mut self, host: &str, ports: &[&str]) -> Self {
        self.connect.push(ConnectRule {
            key: "host",
            cidr: host.to_owned(),
            ports: Some(ports.iter().map(|p| (*p).to_owned()).collect()),
        });
        self
    }

    /// Adds a `network.connect` rule with no `ports` key: every port.
    #[must_use]
    pub fn connect_any_port(mut self, cidr: &str) -> Self {
        self.connect.push(ConnectRule {
            key: "cidr",
            cidr: cidr.to_owned(),
            ports: None,
        });
        self
    }

    /// Adds a `network.unix` entry (a path, or `@name` for an abstract socket).
    #[must_use]
    pub fn unix(mut self, addr: &str) -> Self {
        push_unique(&mut self.unix, addr);
        self
    }

    /// Adds a `selector.executables` entry: an exec of that file joins the task.
    #[must_use]
    pub fn select_executable(mut self, path: &str) -> Self {
        push_unique(&mut self.select_executables, path);
        self
    }

    /// Adds a `selector.cgroups` entry (a cgroup v2 path, `/a/b`).
    #[must_use]
    pub fn select_cgroup(mut self, path: &str) -> Self {
        push_unique(&mut self.select_cgroups, path);
        self
    }

    /// Adds a `subtasks` entry: a task this one may hand to a child with `corral run`.
    #[must_use]
    pub fn subtask(mut self, name: &str) -> Self {
        push_unique(&mut self.subtasks, name);
        self
    }

    /// Adds a `privileges` entry: a guarded operation the task may do after all.
    #[must_use]
    pub fn privilege(mut self, name: &str) -> Self {
        push_unique(&mut self.privileges, name);
        self
    }

    /// `<name>.yaml`.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("{}.yaml", self.name)
    }

    /// The policy as YAML. Every scalar is written as a JSON string, which YAML reads verbatim.
    #[must_use]
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        y.push_str("apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n");
        let _ = writeln!(y, "  name: {}\nspec:", quote(&self.name));
        if let Some(mode) = self.mode {
            let _ = writeln!(y, "  mode: {mode}");
        }
        if !self.exec.is_empty() {
            let _ = writeln!(y, "  exec:\n    allow: {}", list(&self.exec));
        }
        if !(self.read.is_empty() && self.write.is_empty() && self.deny.is_empty()) {
            y.push_str("  files:\n");
            for (key, entries) in [
                ("read", &self.read),
                ("write", &self.write),
                ("deny", &self.deny),
            ] {
                if !entries.is_empty() {
                    let _ = writeln!(y, "    {key}: {}", list(entries));
                }
            }
        }
        if !(self.connect.is_empty() && self.unix.is_empty()) {
            y.push_str("  network:\n");
            if !self.connect.is_empty() {
                y.push_str("    connect:\n");
                for rule in &self.connect {
                    let _ = writeln!(y, "      - {}: {}", rule.key, quote(&rule.cidr));
                    if let Some(ports) = &rule.ports {
                        let ports: Vec<String> = ports
                            .iter()
                            .map(|p| {
                                if p.parse::<u16>().is_ok() {
                                    p.clone()
                                } else {
                                    quote(p)
                                }
                            })
                            .collect();
                        let _ = writeln!(y, "        ports: [{}]", ports.join(", "));
                    }
                }
            }
            if !self.unix.is_empty() {
                let _ = writeln!(y, "    unix: {}", list(&self.unix));
            }
        }
        if !self.subtasks.is_empty() {
            let _ = writeln!(y, "  subtasks: {}", list(&self.subtasks));
        }
        if !self.privileges.is_empty() {
            let _ = writeln!(y, "  privileges: {}", list(&self.privileges));
        }
        if !(self.select_executables.is_empty() && self.select_cgroups.is_empty()) {
            y.push_str("  selector:\n");
            if !self.select_executables.is_empty() {
                let _ = writeln!(y, "    executables: {}", list(&self.select_executables));
            }
            if !self.select_cgroups.is_empty() {
                let _ = writeln!(y, "    cgroups: {}", list(&self.select_cgroups));
            }
        }
        y
    }
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn list(entries: &[String]) -> String {
    let quoted: Vec<String> = entries.iter().map(|e| quote(e)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::Policy;

    #[test]
    fn yaml_has_only_the_sections_given() {
        let y = Policy::new("t-1")
            .audit()
            .exec("/bin/x")
            .read("/r/")
            .deny("/r/.env")
            .connect("127.0.0.1/32", &["80", "9000-9100"])
            .connect_any_port("::1/128")
            .unix("@tools")
            .yaml();
        let expected = "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: \"t-1\"\nspec:\n  mode: audit\n  exec:\n    allow: [\"/bin/x\"]\n  files:\n    read: [\"/r/\"]\n    deny: [\"/r/.env\"]\n  network:\n    connect:\n      - cidr: \"127.0.0.1/32\"\n        ports: [80, \"9000-9100\"]\n      - cidr: \"::1/128\"\n    unix: [\"@tools\"]\n";
        assert_eq!(y, expected, "expected this exact YAML");
        let empty = Policy::new("e").yaml();
        assert!(
            !empty.contains("files") && !empty.contains("exec") && !empty.contains("network"),
            "expected an empty policy to have no sections, got:\n{empty}"
        );
    }
}
