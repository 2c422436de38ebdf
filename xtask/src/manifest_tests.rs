//! The Kubernetes manifests of `deploy/kubernetes/` against the API's own types
//! (`k8s-openapi`): each document must deserialize into its kind, and serializing it back must
//! give the same document, so a misspelt or misplaced field (which the types would silently
//! drop) fails as surely as a wrong type or a missing required field.
use std::path::{Path, PathBuf};

use k8s_openapi::api::{
    apps::v1::DaemonSet,
    core::v1::{ConfigMap, Namespace, ServiceAccount},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::paths;

fn manifest(name: &str) -> (PathBuf, Value) {
    let path = paths::repo().join("deploy/kubernetes").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("expected {} to exist: {e}", path.display()));
    let value: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("expected {} to be one YAML document: {e}", path.display()));
    (path, value)
}

/// Checks `value` as a `T`; returns it.
fn check_as<T: DeserializeOwned + Serialize>(path: &Path, value: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("{}: not a valid object of its kind: {e}", path.display()))?;
    let back = serde_json::to_value(&typed)
        .map_err(|e| format!("{}: cannot serialize back: {e}", path.display()))?;
    if back != *value {
        return Err(format!(
            "{}: fields the API does not know (dropped by the round trip):\n{}",
            path.display(),
            differences(value, &back, "").join("\n")
        ));
    }
    Ok(typed)
}

/// Paths present in `a` but missing or different in `b`.
fn differences(original: &Value, back: &Value, at: &str) -> Vec<String> {
    match (original, back) {
        (Value::Object(fields), Value::Object(kept)) => fields
            .iter()
            .flat_map(|(key, value)| match kept.get(key) {
                Some(again) => differences(value, again, &format!("{at}.{key}")),
                None => vec![format!("  {at}.{key}")],
            })
            .collect(),
        (Value::Array(items), Value::Array(kept)) if items.len() == kept.len() => items
            .iter()
            .zip(kept)
            .enumerate()
            .flat_map(|(i, (value, again))| differences(value, again, &format!("{at}[{i}]")))
            .collect(),
        _ if original == back => Vec::new(),
        _ => vec![format!("  {at}: {original} became {back}")],
    }
}

fn valid<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let (path, value) = manifest(name);
    check_as::<T>(&path, &value).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_manifest_is_a_valid_object_of_its_kind() {
    let ns: Namespace = valid("namespace.yaml");
    let sa: ServiceAccount = valid("serviceaccount.yaml");
    let _: ConfigMap = valid("configmap-config.yaml");
    let _: ConfigMap = valid("configmap-policies.yaml");
    let _: DaemonSet = valid("daemonset.yaml");
    assert_eq!(ns.metadata.name.as_deref(), Some("corral-system"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("corral-system"));
    let listed: Vec<String> = std::fs::read_dir(paths::repo().join("deploy/kubernetes"))
        .unwrap_or_else(|e| panic!("expected deploy/kubernetes: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert_eq!(
        listed.len(),
        5,
        "expected every manifest checked here, found {listed:?}"
    );
}

#[test]
fn daemonset_has_what_the_daemon_needs() {
    let ds: DaemonSet = valid("daemonset.yaml");
    let pod = ds
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_else(|| panic!("expected a pod template spec"));
    assert_eq!(
        pod.host_pid,
        Some(true),
        "tagging host processes needs hostPID"
    );
    let mounts: Vec<(String, String)> = pod
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect();
    for path in [
        "/sys/fs/bpf",
        "/sys/kernel/btf",
        "/sys/kernel/security",
        "/sys/fs/cgroup",
        "/run/corral",
        "/etc/corral/policies",
    ] {
        assert!(
            mounts.iter().any(|(_, p)| p == path),
            "expected a mount at {path}, got {mounts:?}"
        );
    }
    let volumes = pod.volumes.unwrap_or_default();
    let policies = volumes
        .iter()
        .find(|v| v.name == "policies")
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone());
    assert_eq!(
        policies.as_deref(),
        Some("corral-policies"),
        "expected the policies directory to be the corral-policies ConfigMap"
    );
    let caps = pod.containers[0]
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default();
    for cap in ["BPF", "PERFMON", "SYS_ADMIN", "NET_ADMIN"] {
        assert!(caps.iter().any(|c| c == cap), "expected {cap} in {caps:?}");
    }
}

#[test]
fn the_check_bites_on_unknown_fields_and_wrong_types() {
    let (path, mut value) = manifest("daemonset.yaml");
    value["spec"]["template"]["spec"]["hostPid"] = Value::Bool(true);
    let e = check_as::<DaemonSet>(&path, &value)
        .map(|_| ())
        .expect_err("expected a misspelt field (hostPid) to be refused");
    assert!(e.contains(".spec.template.spec.hostPid"), "got: {e}");
    let (path, mut value) = manifest("daemonset.yaml");
    value["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        Value::String("nine".to_owned());
    assert!(
        check_as::<DaemonSet>(&path, &value).is_err(),
        "expected a string port to be refused"
    );
}
