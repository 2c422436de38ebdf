use std::path::{Path, PathBuf};

use super::*;

fn parse_ok(text: &str) -> Config {
    parse(Path::new("corral.toml"), text)
        .unwrap_or_else(|e| panic!("expected the configuration to parse: {e}"))
}

fn error_of(text: &str) -> String {
    match parse(Path::new("corral.toml"), text) {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_file_is_all_defaults() {
    let c = parse_ok("");
    assert_eq!(c, Config::default());
    assert_eq!(c.daemon.policies, PathBuf::from("/etc/corral/policies"));
    assert_eq!(c.daemon.socket, PathBuf::from("/run/corral/corral.sock"));
    assert!(c.events.stdout, "events go to stdout by default");
    assert_eq!(c.events.file, None);
    assert_eq!(c.metrics.listen.to_string(), DEFAULT_METRICS_LISTEN);
    assert!(
        c.metrics.listen.ip().is_loopback(),
        "metrics must listen on loopback by default"
    );
}

#[test]
fn keys_are_read() {
    let c = parse_ok(
        r#"
[daemon]
policies = "/srv/policies"
[events]
stdout = false
file = "/var/log/corral/events.json"
rotate_bytes = 4096
keep = 9
subscriber_queue = 3
[metrics]
listen = "[::1]:9000"
enabled = false
[log]
level = "debug"
"#,
    );
    assert_eq!(c.daemon.policies, PathBuf::from("/srv/policies"));
    assert!(!c.events.stdout);
    assert_eq!(
        c.events.file.as_deref(),
        Some(Path::new("/var/log/corral/events.json"))
    );
    assert_eq!(
        (
            c.events.rotate_bytes,
            c.events.keep,
            c.events.subscriber_queue
        ),
        (4096, 9, 3)
    );
    assert_eq!(c.metrics.listen.to_string(), "[::1]:9000");
    assert!(!c.metrics.enabled);
    assert_eq!(c.log.level, "debug");
}

#[test]
fn unknown_key_is_an_error_at_its_position() {
    let e = error_of("[events]\nstdout = true\nrotate_size = 5\n");
    assert!(
        e.starts_with("corral.toml:3:1: unknown field `rotate_size`"),
        "expected the unknown key named at 3:1, got: {e}"
    );
    let e = error_of("[event]\n");
    assert!(
        e.starts_with("corral.toml:1:2: unknown field `event`"),
        "expected the unknown section named at 1:2, got: {e}"
    );
}

#[test]
fn bad_values_are_errors_at_the_value() {
    let e = error_of("[events]\nkeep = 0\n");
    assert_eq!(e, "corral.toml:2:8: must be at least 1");
    let e = error_of("[metrics]\nlisten = \"localhost\"\n");
    assert!(
        e.starts_with("corral.toml:2:10: "),
        "expected the bad address placed at 2:10, got: {e}"
    );
    let e = error_of("[events]\nstdout = \"yes\"\n");
    assert!(
        e.starts_with("corral.toml:2:10: "),
        "expected the wrong type placed at 2:10, got: {e}"
    );
    let e = error_of("[log]\nlevel = \"info,=[\"\n");
    assert!(
        e.starts_with("corral.toml:2:9: invalid log filter"),
        "expected the bad filter placed at 2:9, got: {e}"
    );
}

#[test]
fn dns_servers_and_min_ttl_are_read_and_checked() {
    let c = parse_ok("[dns]\nservers = [\"127.0.0.1:5353\", \"[::1]:53\"]\nmin_ttl = \"2m\"\n");
    let servers: Vec<String> = c.dns.servers.iter().map(ToString::to_string).collect();
    assert_eq!(servers, ["127.0.0.1:5353", "[::1]:53"]);
    assert_eq!(c.dns.min_ttl, std::time::Duration::from_secs(120));
    let d = parse_ok("");
    assert!(
        d.dns.servers.is_empty(),
        "no servers by default (the daemon reads /etc/resolv.conf)"
    );
    assert_eq!(d.dns.min_ttl, std::time::Duration::from_secs(5));
    let e = error_of("[dns]\nservers = [\"127.0.0.1\"]\n");
    assert!(
        e.starts_with("corral.toml:2:12: "),
        "expected a server without a port refused at 2:12, got: {e}"
    );
    let e = error_of("[dns]\nmin_ttl = \"500ms\"\n");
    assert_eq!(e, "corral.toml:2:11: `500ms` is less than 1s");
    let e = error_of("[dns]\nmin_ttl = \"soon\"\n");
    assert!(
        e.starts_with("corral.toml:2:11: invalid duration `soon`"),
        "expected the bad duration placed at 2:11, got: {e}"
    );
    let e = error_of("[dns]\nserver = []\n");
    assert!(
        e.starts_with("corral.toml:2:1: unknown field `server`"),
        "expected the unknown key named at 2:1, got: {e}"
    );
}

#[test]
fn allowed_events_and_their_sampling_rate_are_read() {
    let c = parse_ok("[events]\nallowed = \"none\"\n");
    assert_eq!(c.events.allowed, AllowedEvents::None);
    assert_eq!(c.events.allowed_sample, 100, "default sampling rate");
    let c = parse_ok("[events]\nallowed = \"all\"\n");
    assert_eq!(c.events.allowed, AllowedEvents::All);
    let c = parse_ok("[events]\nallowed = \"sampled\"\nallowed_sample = 7\n");
    assert_eq!(
        (c.events.allowed, c.events.allowed_sample),
        (AllowedEvents::Sampled, 7)
    );
    let k = c.events.kernel_settings();
    assert_eq!(
        (k.allowed_events, k.allowed_sample),
        (agent_common::AllowedEvents::Sampled as u32, 7),
        "the kernel's SETTINGS entry carries the mode code and the rate"
    );
    assert_eq!(
        parse_ok("").events.kernel_settings(),
        agent_common::Settings {
            allowed_events: agent_common::AllowedEvents::None as u32,
            allowed_sample: 100
        },
        "by default the kernel reports no allowed decision"
    );
}

#[test]
fn bad_allowed_values_are_errors_at_the_value() {
    let e = error_of("[events]\nallowed = \"some\"\n");
    assert!(
        e.starts_with("corral.toml:2:11: unknown value `some`"),
        "expected the unknown mode placed at 2:11, got: {e}"
    );
    for bad in ["0", "1048577"] {
        let e = error_of(&format!("[events]\nallowed_sample = {bad}\n"));
        assert!(
            e.starts_with("corral.toml:2:18: ") && e.contains("not between 1 and 1048576"),
            "expected allowed_sample = {bad} refused at 2:18, got: {e}"
        );
    }
    let e = error_of("[events]\nallowed_sample = -3\n");
    assert!(
        e.starts_with("corral.toml:2:18: "),
        "expected a negative rate refused at 2:18, got: {e}"
    );
}

#[test]
fn explicit_flags_override_the_file() {
    let file = parse_ok(
        "[daemon]\nsocket = \"/x.sock\"\npolicies = \"/p\"\n[events]\nfile = \"/e.json\"\n",
    );
    let c = file.clone().with_overrides(Overrides {
        socket: Some(PathBuf::from("/y.sock")),
        ..Overrides::default()
    });
    assert_eq!(c.daemon.socket, PathBuf::from("/y.sock"), "flag wins");
    assert_eq!(c.daemon.policies, PathBuf::from("/p"), "file kept");
    assert!(
        c.events.stdout && c.events.file.is_some(),
        "both sinks kept"
    );
    let stdout_only = file.clone().with_overrides(Overrides {
        events: Some(PathBuf::from("-")),
        ..Overrides::default()
    });
    assert!(stdout_only.events.stdout && stdout_only.events.file.is_none());
    let file_only = file.with_overrides(Overrides {
        events: Some(PathBuf::from("/f.json")),
        ..Overrides::default()
    });
    assert!(!file_only.events.stdout);
    assert_eq!(file_only.events_spec(), PathBuf::from("/f.json"));
}

#[test]
fn missing_default_file_means_defaults_but_a_named_one_must_exist() {
    let missing = Path::new("/nonexistent/corral.toml");
    assert_eq!(
        load(missing, false).unwrap_or_else(|e| panic!("expected defaults: {e}")),
        Config::default()
    );
    let e = load(missing, true).map_or_else(|e| e.to_string(), |c| format!("{c:?}"));
    assert!(
        e.starts_with("/nonexistent/corral.toml:1:1: cannot read"),
        "expected a read error for a named file, got: {e}"
    );
}

#[test]
fn shipped_file_documents_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/corral.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("expected {} to exist: {e}", path.display()));
    let shipped = parse_ok(&text);
    let mut expected = Config::default();
    expected.events.stdout = false;
    expected.events.file = Some(PathBuf::from("/var/log/corral/events.json"));
    assert_eq!(
        shipped, expected,
        "deploy/corral.toml must hold the defaults (but the file sink)"
    );
    let table: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("expected deploy/corral.toml to be TOML: {e}"));
    let default_keys = [
        ("daemon", 2),
        ("events", 8),
        ("metrics", 2),
        ("log", 1),
        ("dns", 2),
    ];
    for (section, count) in default_keys {
        let keys = table
            .get(section)
            .and_then(toml::Value::as_table)
            .map_or(0, toml::Table::len);
        assert_eq!(
            keys, count,
            "expected every key of [{section}] written out in deploy/corral.toml"
        );
    }
}

/// The `data` entries of a `ConfigMap` manifest in `deploy/kubernetes/`.
fn config_map_data(name: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("expected {} to exist: {e}", path.display()));
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("expected {} to be YAML: {e}", path.display()));
    doc.get("data")
        .and_then(serde_yaml_ng::Value::as_mapping)
        .unwrap_or_else(|| panic!("expected a data map in {}", path.display()))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or_default().to_owned(),
                v.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn kubernetes_config_maps_hold_a_valid_config_and_valid_policies() {
    let config = config_map_data("configmap-config.yaml");
    assert_eq!(config.len(), 1, "expected only corral.toml");
    let c = parse_ok(&config[0].1);
    assert!(c.events.stdout, "events on stdout for the container log");
    assert_eq!(c.daemon.policies, PathBuf::from("/etc/corral/policies"));
    let policies = config_map_data("configmap-policies.yaml");
    assert!(!policies.is_empty(), "expected example policies");
    for (key, yaml) in policies {
        assert!(
            Path::new(&key).extension().is_some_and(|x| x == "yaml"),
            "only *.yaml files are loaded: {key}"
        );
        let p = crate::policy::parse_policy(Path::new(&key), &yaml)
            .unwrap_or_else(|e| panic!("expected {key} to be a valid policy: {e}"));
        assert_eq!(format!("{}.yaml", p.name), key, "file named after its task");
    }
}
