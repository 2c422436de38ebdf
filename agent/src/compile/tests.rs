//! Compiling policies into map entries: folding, keys, ports, capacity, and the shipped examples.

use std::path::{Path, PathBuf};

use agent_common::{
    FILE_RULES_MAX, Mode, NET_RULES_MAX, PORT_RANGES_MAX, RULE_DENY, RULE_DENY_BENEATH, RULE_EXEC,
    RULE_READ, RULE_WRITE, TASKS_MAX, UNIX_PATH_MAX, UNIX_RULES_MAX, UnixRuleKey,
};

use super::*;
use crate::policy::{load_policy_dir, parse_policy};

pub(super) fn policy(spec: &str) -> TaskPolicy {
    let text =
        format!("apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: t\nspec:\n{spec}");
    parse_policy(Path::new("inline.yaml"), &text)
        .unwrap_or_else(|e| panic!("expected the inline policy to parse, got: {e}"))
}

fn compiled(task_id: u32, spec: &str) -> CompiledTask {
    compile(task_id, &policy(spec))
        .unwrap_or_else(|e| panic!("expected the policy to compile: {e}"))
}

/// The key bytes of a file entry (path, plus NUL for exact entries), from its prefix length.
fn key_bytes(e: &FileEntry) -> &[u8] {
    let len = (e.prefix_len as usize - 32) / 8;
    &e.data.path[..len]
}

/// Flags of the entry whose key bytes are `key` (exact keys written with their "\0").
fn flags(task: &CompiledTask, key: &str) -> u32 {
    let found: Vec<&FileEntry> = task
        .files
        .iter()
        .filter(|e| key_bytes(e) == key.as_bytes())
        .collect();
    match found.as_slice() {
        [e] => e.flags,
        _ => panic!(
            "expected exactly one entry for {key:?}, found {}; entries: {:?}",
            found.len(),
            keys(task)
        ),
    }
}

fn keys(task: &CompiledTask) -> Vec<String> {
    task.files
        .iter()
        .map(|e| String::from_utf8_lossy(key_bytes(e)).into_owned())
        .collect()
}

fn ranges(set: &PortSet) -> Vec<(u16, u16)> {
    set.ranges[..set.count as usize]
        .iter()
        .map(|r| (r.lo, r.hi))
        .collect()
}

fn v4_ports(task: &CompiledTask, addr: [u8; 4], cidr_len: u32) -> Vec<(u16, u16)> {
    let e = task
        .net_v4
        .iter()
        .find(|e| e.data.addr == addr && e.prefix_len == 32 + cidr_len)
        .unwrap_or_else(|| {
            panic!(
                "expected a v4 entry for {addr:?}/{cidr_len}: {:?}",
                task.net_v4
            )
        });
    ranges(&e.ports)
}

#[test]
fn exact_and_prefix_keys_carry_task_id_and_length() {
    let t = compiled(
        7,
        "  exec:\n    allow: [/usr/bin/git, /usr/lib/git-core/]\n",
    );
    assert_eq!(
        keys(&t),
        [
            "/usr/bin/git\0",
            "/usr/lib/git-core\0",
            "/usr/lib/git-core/"
        ],
        "an exact entry with NUL, and a prefix rule's entry plus its directory's exact entry"
    );
    for e in &t.files {
        assert_eq!(e.data.task_id, 7, "every key holds the task id");
        assert_eq!(e.flags, RULE_EXEC, "exec rules carry RULE_EXEC only");
        assert!(
            e.data.path[(e.prefix_len as usize - 32) / 8..]
                .iter()
                .all(|b| *b == 0),
            "bytes past the key are zero"
        );
    }
    assert_eq!(
        t.files[0].prefix_len,
        32 + 8 * 13,
        "exact: 12 path bytes + NUL"
    );
    assert_eq!(
        t.files[2].prefix_len,
        32 + 8 * 18,
        "prefix: 18 path bytes, no NUL"
    );
    assert_eq!(t.mode, Mode::Enforce);
}

#[test]
fn root_prefix_has_no_directory_entry() {
    let t = compiled(1, "  files:\n    read: [/]\n");
    assert_eq!(keys(&t), ["/"], "\"/\" alone is one 1-byte prefix entry");
    assert_eq!(t.files[0].prefix_len, 32 + 8);
    assert_eq!(t.files[0].flags, RULE_READ);
}

#[test]
fn deny_directory_beats_deeper_reads() {
    let t = compiled(
        1,
        "  files:\n    read: [/w/, /w/secrets/public.txt, /w/secrets/docs/]\n    deny: [/w/secrets/]\n",
    );
    assert_eq!(
        flags(&t, "/w/secrets\0"),
        RULE_READ | RULE_DENY | RULE_DENY_BENEATH,
        "the denied directory itself: denied, and a rename of it would move the denied tree"
    );
    for key in [
        "/w/secrets/",
        "/w/secrets/public.txt\0",
        "/w/secrets/docs/",
        "/w/secrets/docs\0",
    ] {
        assert_eq!(
            flags(&t, key),
            RULE_READ | RULE_DENY,
            "{key:?} is beneath the denied directory: it must carry RULE_DENY"
        );
    }
    assert_eq!(flags(&t, "/w/"), RULE_READ, "the parent stays readable");
}

#[test]
fn exact_deny_only_covers_its_path() {
    let t = compiled(
        1,
        "  files:\n    read: [/w/]\n    write: [/w/]\n    deny: [/w/.env]\n",
    );
    assert_eq!(flags(&t, "/w/.env\0"), RULE_READ | RULE_WRITE | RULE_DENY);
    assert_eq!(
        flags(&t, "/w/"),
        RULE_READ | RULE_WRITE,
        "the directory is not denied"
    );
    assert_eq!(
        keys(&t),
        ["/w\0", "/w/", "/w/.env\0"],
        "duplicate paths merge into one entry"
    );
}

#[test]
fn deeper_write_rule_keeps_enclosing_read() {
    let t = compiled(
        1,
        "  exec:\n    allow: [/usr/bin/]\n  files:\n    read: [/usr/, /srv/]\n    write: [/srv/out/, /srv/log.txt]\n",
    );
    assert_eq!(
        flags(&t, "/srv/out/"),
        RULE_READ | RULE_WRITE,
        "write under read keeps read"
    );
    assert_eq!(
        flags(&t, "/srv/out\0"),
        RULE_READ | RULE_WRITE,
        "so does the directory itself"
    );
    assert_eq!(
        flags(&t, "/srv/log.txt\0"),
        RULE_READ | RULE_WRITE,
        "and an exact rule"
    );
    assert_eq!(
        flags(&t, "/srv/"),
        RULE_READ,
        "the parent does not gain write"
    );
    assert_eq!(
        flags(&t, "/usr/bin/"),
        RULE_READ | RULE_EXEC,
        "exec dir under a read dir"
    );
    assert_eq!(
        flags(&t, "/usr/"),
        RULE_READ,
        "the read dir does not gain exec"
    );
}

#[test]
fn exact_rules_do_not_fold_into_deeper_entries() {
    // "/srv" exact is not a prefix rule: it says nothing about "/srv/x".
    let t = compiled(1, "  files:\n    write: [/srv]\n    read: [/srv/x]\n");
    assert_eq!(flags(&t, "/srv\0"), RULE_WRITE);
    assert_eq!(
        flags(&t, "/srv/x\0"),
        RULE_READ,
        "an exact rule gives nothing to others"
    );
}

#[test]
fn sibling_prefix_is_not_an_enclosing_directory() {
    // "/w/" is not a prefix of "/wx/..." and "/wx" is not under "/w/".
    let t = compiled(1, "  files:\n    deny: [/w/]\n    read: [/wx/, /w]\n");
    assert_eq!(
        flags(&t, "/wx/"),
        RULE_READ,
        "a sibling with a longer name is not beneath /w/"
    );
    assert_eq!(
        flags(&t, "/w\0"),
        RULE_READ | RULE_DENY | RULE_DENY_BENEATH,
        "the denied directory itself"
    );
}

#[test]
fn every_ancestor_of_a_deny_rule_carries_deny_beneath() {
    let t = compiled(
        1,
        "  files:\n    read: [/w/]\n    write: [/w/]\n    deny: [/w/a/secrets/, /w/b/key]\n",
    );
    for key in ["/w\0", "/w/a\0", "/w/a/secrets\0", "/w/b\0"] {
        assert_ne!(
            flags(&t, key) & RULE_DENY_BENEATH,
            0,
            "{key:?} holds a denied path: renaming it must be refused"
        );
    }
    assert_eq!(
        flags(&t, "/w/a\0"),
        RULE_READ | RULE_WRITE | RULE_DENY_BENEATH,
        "an ancestor keeps the flags of the prefix rules above it"
    );
    assert_eq!(
        flags(&t, "/w/b/key\0") & RULE_DENY_BENEATH,
        0,
        "a denied file has nothing beneath it"
    );
    assert!(
        !keys(&t).iter().any(|k| k == "/\0"),
        "\"/\" is never renamed and needs no entry: {:?}",
        keys(&t)
    );
}

#[test]
fn v4_mapped_cidr_compiles_to_an_ipv4_entry() {
    let t = compiled(
        3,
        "  network:\n    connect:\n      - cidr: \"::ffff:10.0.0.0/104\"\n        ports: [443]\n",
    );
    assert!(
        t.net_v6.is_empty(),
        "no IPv6 entry for a mapped network: {:?}",
        t.net_v6
    );
    assert_eq!(t.net_v4.len(), 1);
    assert_eq!(t.net_v4[0].data.task_id, 3);
    assert_eq!(v4_ports(&t, [10, 0, 0, 0], 8), [(443, 443)]);
}

#[test]
fn ports_fold_from_enclosing_networks_and_merge() {
    let t = compiled(
        1,
        "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n        ports: [443, \"8000-8080\"]\n      - cidr: 10.1.0.0/16\n        ports: [80, 444, \"8081-8090\", \"8050-8060\"]\n      - cidr: 10.1.2.0/24\n        ports: [22]\n      - cidr: 10.1.0.0/16\n        ports: [81]\n      - cidr: 192.0.2.0/24\n      - cidr: \"2001:db8::/32\"\n        ports: [443]\n      - cidr: \"2001:db8:1::/48\"\n        ports: [8443]\n",
    );
    assert_eq!(
        v4_ports(&t, [10, 0, 0, 0], 8),
        [(443, 443), (8000, 8080)],
        "the outer network keeps its own"
    );
    assert_eq!(
        v4_ports(&t, [10, 1, 0, 0], 16),
        [(80, 81), (443, 444), (8000, 8090)],
        "inner: own ports (both rules) plus the enclosing /8's, adjacent ranges coalesced"
    );
    assert_eq!(
        v4_ports(&t, [10, 1, 2, 0], 24),
        [(22, 22), (80, 81), (443, 444), (8000, 8090)],
        "innermost: ports of every enclosing network"
    );
    assert_eq!(
        v4_ports(&t, [192, 0, 2, 0], 24),
        [(0, u16::MAX)],
        "absent ports = every port"
    );
    assert_eq!(t.net_v4.len(), 4, "duplicate networks merge into one entry");
    let inner = t
        .net_v6
        .iter()
        .find(|e| e.prefix_len == 32 + 48)
        .expect("an entry for 2001:db8:1::/48");
    assert_eq!(
        ranges(&inner.ports),
        [(443, 443), (8443, 8443)],
        "v6 folds the same way"
    );
    assert_eq!(inner.data.addr[..6], [0x20, 0x01, 0x0d, 0xb8, 0, 1]);
}

#[test]
fn too_many_port_ranges_is_an_error_naming_task_and_cidr() {
    let ports: Vec<String> = (0..=PORT_RANGES_MAX)
        .map(|i| (1000 + 2 * i).to_string())
        .collect();
    let spec = format!(
        "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n        ports: [{}]\n      - cidr: 10.1.0.0/16\n        ports: [1]\n",
        ports[1..].join(", ")
    );
    // The /8 alone has PORT_RANGES_MAX ranges: it fits. The /16 inherits them plus its own.
    let err = compile(1, &policy(&spec)).expect_err("the /16 should need 17 ranges");
    assert_eq!(
        err.to_string(),
        "task t: network 10.1.0.0/16 needs 17 port ranges (after merging those of every enclosing \
         network), more than the 16 a rule can hold"
    );
    let fits = format!(
        "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n        ports: [{}]\n",
        ports[1..].join(", ")
    );
    let t = compiled(1, &fits);
    assert_eq!(
        t.net_v4[0].ports.count as usize, PORT_RANGES_MAX,
        "exactly the bound fits"
    );
}

#[test]
fn unix_keys_hold_pathnames_and_abstract_names() {
    let t = compiled(
        9,
        "  network:\n    unix: [/run/agent-tools.sock, \"@tools\", /run/agent-tools.sock]\n",
    );
    let mut path = [0u8; UNIX_PATH_MAX];
    path[..21].copy_from_slice(b"/run/agent-tools.sock");
    let mut name = [0u8; UNIX_PATH_MAX];
    name[1..6].copy_from_slice(b"tools");
    assert_eq!(
        t.unix,
        [
            UnixRuleKey {
                task_id: 9,
                len: 6,
                path: name
            },
            UnixRuleKey {
                task_id: 9,
                len: 21,
                path
            },
        ],
        "one key per distinct address; abstract = NUL + name, len counts the NUL"
    );
}

fn empty_task() -> CompiledTask {
    CompiledTask {
        mode: Mode::Audit,
        files: Vec::new(),
        net_v4: Vec::new(),
        net_v6: Vec::new(),
        unix: Vec::new(),
        privileges: 0,
    }
}

#[test]
fn capacity_counts_entries_of_all_tasks() {
    let one = compiled(1, "  files:\n    read: [/usr/]\n");
    assert!(
        check_capacity(&[one.clone(), one.clone()]).is_ok(),
        "a few entries fit"
    );

    let tasks = vec![empty_task(); TASKS_MAX as usize + 1];
    let err = check_capacity(&tasks).expect_err("more tasks than TASKS_MAX");
    assert_eq!(
        err.to_string(),
        "map TASKS would need 1025 entries, more than its bound of 1024"
    );

    let mut big = empty_task();
    big.unix = vec![one_unix_key(); UNIX_RULES_MAX as usize / 2 + 1];
    let err = check_capacity(&[big.clone(), big]).expect_err("unix keys of two tasks overflow");
    assert!(
        matches!(
            err,
            CompileError::Capacity {
                map: "UNIX_RULES",
                count: 4098,
                bound: UNIX_RULES_MAX
            }
        ),
        "expected UNIX_RULES overflow, got {err:?}"
    );

    let mut files = empty_task();
    files.files = vec![one.files[0]; FILE_RULES_MAX as usize + 1];
    let err = check_capacity(&[files]).expect_err("too many file entries");
    assert!(
        matches!(
            err,
            CompileError::Capacity {
                map: "FILE_RULES",
                count: 65_537,
                ..
            }
        ),
        "expected FILE_RULES overflow, got {err:?}"
    );

    let net = compiled(1, "  network:\n    connect:\n      - cidr: \"::1/128\"\n");
    let mut v6 = empty_task();
    v6.net_v6 = vec![net.net_v6[0]; NET_RULES_MAX as usize + 1];
    let err = check_capacity(&[v6]).expect_err("too many IPv6 entries");
    assert!(
        matches!(
            err,
            CompileError::Capacity {
                map: "NET_V6_RULES",
                ..
            }
        ),
        "expected NET_V6_RULES overflow, got {err:?}"
    );
}

fn one_unix_key() -> UnixRuleKey {
    UnixRuleKey {
        task_id: 1,
        len: 1,
        path: [0; UNIX_PATH_MAX],
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn shipped_example_policies_load_and_compile() {
    let dir = examples_dir();
    let policies = load_policy_dir(&dir)
        .unwrap_or_else(|e| panic!("the example policies in {} should load: {e}", dir.display()));
    let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["repo-coder", "researcher", "reviewer"],
        "one task per example file"
    );
    let tasks: Vec<CompiledTask> = policies
        .iter()
        .zip(1..)
        .map(|(p, id)| compile(id, p).unwrap_or_else(|e| panic!("{} should compile: {e}", p.name)))
        .collect();
    check_capacity(&tasks).unwrap_or_else(|e| panic!("the examples should fit the maps: {e}"));

    let coder = &tasks[0];
    assert_eq!(flags(coder, "/workspace/"), RULE_READ | RULE_WRITE);
    assert_eq!(
        flags(coder, "/workspace\0"),
        RULE_READ | RULE_WRITE | RULE_DENY_BENEATH
    );
    assert_eq!(
        flags(coder, "/workspace/.env\0"),
        RULE_READ | RULE_WRITE | RULE_DENY
    );
    assert_eq!(
        flags(coder, "/workspace/.git/hooks/"),
        RULE_READ | RULE_WRITE | RULE_DENY
    );
    assert_eq!(
        flags(coder, "/usr/bin/git\0"),
        RULE_READ | RULE_EXEC,
        "exec under readable /usr/"
    );
    assert_eq!(coder.net_v4.len(), 1, "loopback only: {:?}", coder.net_v4);
    assert_eq!(v4_ports(coder, [127, 0, 0, 0], 8), [(0, u16::MAX)]);
    assert_eq!(coder.net_v6.len(), 1, "and ::1");
    assert!(coder.unix.is_empty(), "no unix sockets for repo-coder");

    let researcher = &tasks[1];
    assert_eq!(
        v4_ports(researcher, [192, 0, 2, 0], 24),
        [(443, 443), (8443, 8444)]
    );
    assert_eq!(v4_ports(researcher, [127, 0, 0, 1], 32), [(8080, 8080)]);
    assert_eq!(ranges(&researcher.net_v6[0].ports), [(443, 443)]);
    assert!(
        researcher.files.iter().all(|e| e.flags & RULE_WRITE == 0
            || key_bytes(e).starts_with(b"/tmp")
            || key_bytes(e) == b"/dev/null\0"),
        "the researcher writes only under /tmp/ (and /dev/null): {:?}",
        keys(researcher)
    );

    let reviewer = &tasks[2];
    assert!(
        reviewer.net_v4.is_empty() && reviewer.net_v6.is_empty() && reviewer.unix.is_empty(),
        "no network"
    );
    assert_eq!(
        flags(reviewer, "/workspace/"),
        RULE_READ,
        "read-only workspace"
    );
    assert_eq!(flags(reviewer, "/tmp/"), RULE_READ | RULE_WRITE);
    assert!(
        reviewer.files.iter().all(|e| e.flags & RULE_WRITE == 0
            || key_bytes(e).starts_with(b"/tmp")
            || key_bytes(e) == b"/dev/null\0"),
        "the reviewer writes only under /tmp/ (and /dev/null): {:?}",
        keys(reviewer)
    );
}
