//! Parsing whole policy documents: the model, and the position and text of every error.

use std::{
    fs,
    path::{Path, PathBuf},
};

use agent_common::Mode;

use super::*;

/// The example of the policy schema, as documented.
const FULL_EXAMPLE: &str = r#"apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: repo-coder          # [a-z0-9-], 1..=63 chars
spec:
  mode: enforce             # enforce | audit (default enforce)
  exec:
    allow: [/usr/bin/git, /usr/lib/git-core/]   # "/" at the end = everything beneath (and the dir itself)
  files:
    read:  [/workspace/, /usr/, /lib/, /etc/ld.so.cache]
    write: [/workspace/, /tmp/]
    deny:  [/workspace/.env]                    # beats read, write and exec
  network:
    connect:
      - cidr: 127.0.0.1/32
        ports: [8080, "9000-9100"]              # absent = all ports
      - cidr: "::1/128"
        ports: [443]
    unix: [/run/agent-tools.sock]               # AF_UNIX connect; "@name" = abstract
"#;

pub(super) fn parse(text: &str) -> TaskPolicy {
    parse_policy(Path::new("test.yaml"), text)
        .unwrap_or_else(|e| panic!("expected the policy to parse, got: {e}"))
}

/// Parses `text` as `bad.yaml`, expecting an error; returns its display.
pub(super) fn error_of(text: &str) -> String {
    match parse_policy(Path::new("bad.yaml"), text) {
        Ok(policy) => panic!("expected a policy error, but it parsed: {policy:?}"),
        Err(e) => e.to_string(),
    }
}

fn strs<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// A minimal valid document whose `spec` is `spec` (indented by the caller).
pub(super) fn with_spec(spec: &str) -> String {
    format!("apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: t\nspec:\n{spec}")
}

#[test]
fn parses_the_documented_example() {
    let p = parse(FULL_EXAMPLE);
    assert_eq!(p.name.as_str(), "repo-coder");
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(strs(&p.exec), ["/usr/bin/git", "/usr/lib/git-core/"]);
    assert!(
        p.exec[1].is_prefix() && !p.exec[0].is_prefix(),
        "only the '/'-ended rule is a prefix"
    );
    assert_eq!(
        strs(&p.read),
        ["/workspace/", "/usr/", "/lib/", "/etc/ld.so.cache"]
    );
    assert_eq!(strs(&p.write), ["/workspace/", "/tmp/"]);
    assert_eq!(strs(&p.deny), ["/workspace/.env"]);
    assert_eq!(p.connect.len(), 2, "two connect rules");
    assert_eq!(p.connect[0].destination().to_string(), "127.0.0.1/32");
    let ports: Vec<(u16, u16)> = p.connect[0]
        .ports()
        .expect("the first rule lists ports")
        .iter()
        .map(|s| (s.lo(), s.hi()))
        .collect();
    assert_eq!(ports, [(8080, 8080), (9000, 9100)]);
    assert_eq!(p.connect[1].destination().to_string(), "::1/128");
    assert_eq!(strs(&p.unix), ["/run/agent-tools.sock"]);
}

#[test]
fn absent_sections_allow_nothing_and_mode_defaults_to_enforce() {
    let p = parse(&with_spec("  {}\n"));
    assert_eq!(p.mode, Mode::Enforce, "mode defaults to enforce");
    assert!(
        p.exec.is_empty()
            && p.read.is_empty()
            && p.write.is_empty()
            && p.deny.is_empty()
            && p.connect.is_empty()
            && p.unix.is_empty(),
        "an empty spec should allow nothing: {p:?}"
    );
    let p = parse(&with_spec(
        "  mode: audit\n  network:\n    connect:\n      - cidr: 10.0.0.0/8\n    unix: ['@tools']\n",
    ));
    assert_eq!(p.mode, Mode::Audit);
    assert_eq!(p.connect[0].ports(), None, "absent ports = every port");
    assert!(p.unix[0].is_abstract(), "@tools is an abstract address");
}

/// Checks that each document fails with exactly the expected error line; reports all misses.
fn assert_errors(cases: &[(String, &str)]) {
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let got = error_of(text);
        if got != *expected {
            failures.push(format!("expected: {expected}\n     got: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "wrong errors:\n{}",
        failures.join("\n")
    );
}

/// Invalid values: the position is the value's, the message starts with its field path.
#[test]
fn value_errors_name_file_line_column_and_field() {
    let cases = vec![
        (
            FULL_EXAMPLE.replace("name: repo-coder", "name: Repo_Coder"),
            "bad.yaml:4:9: metadata.name: invalid task name \"Repo_Coder\": 'R' is not one of [a-z0-9-]",
        ),
        (
            FULL_EXAMPLE.replace("apiVersion: corral.dev/v1", "apiVersion: corral.dev/v2"),
            "bad.yaml:1:13: apiVersion: unsupported apiVersion \"corral.dev/v2\", expected \"corral.dev/v1\"",
        ),
        (
            FULL_EXAMPLE.replace("kind: TaskPolicy", "kind: Policy"),
            "bad.yaml:2:7: kind: unsupported kind \"Policy\", expected \"TaskPolicy\"",
        ),
        (
            FULL_EXAMPLE.replace("mode: enforce", "mode: strict"),
            "bad.yaml:6:9: spec.mode: unknown variant `strict`, expected `enforce` or `audit`",
        ),
        (
            FULL_EXAMPLE.replace("/etc/ld.so.cache", "etc/ld.so.cache"),
            "bad.yaml:10:40: spec.files.read[3]: invalid path \"etc/ld.so.cache\": it is not absolute (it must start with '/')",
        ),
        (
            FULL_EXAMPLE.replace("[/workspace/, /tmp/]", "[/workspace/, /tmp//x]"),
            "bad.yaml:11:26: spec.files.write[1]: invalid path \"/tmp//x\": it has an empty component ('//')",
        ),
        (
            FULL_EXAMPLE.replace("[/workspace/.env]", "[/workspace/../.env]"),
            "bad.yaml:12:13: spec.files.deny[0]: invalid path \"/workspace/../.env\": it has a '..' component",
        ),
        (
            FULL_EXAMPLE.replace("/usr/lib/git-core/]", "/usr/lib/git-core/.]"),
            "bad.yaml:8:27: spec.exec.allow[1]: invalid path \"/usr/lib/git-core/.\": it has a '.' component",
        ),
        (
            FULL_EXAMPLE.replace("cidr: 127.0.0.1/32", "cidr: 10.0.0.300/8"),
            "bad.yaml:15:15: spec.network.connect[0].cidr: invalid CIDR \"10.0.0.300/8\": invalid IP address syntax",
        ),
        (
            FULL_EXAMPLE.replace("cidr: 127.0.0.1/32", "cidr: 10.0.0.1/8"),
            "bad.yaml:15:15: spec.network.connect[0].cidr: invalid CIDR \"10.0.0.1/8\": host bits are set; did you mean \"10.0.0.0/8\"?",
        ),
        (
            FULL_EXAMPLE.replace("ports: [443]", "ports: [0]"),
            "bad.yaml:18:17: spec.network.connect[1].ports[0]: invalid port 0: ports are 1..=65535",
        ),
        (
            FULL_EXAMPLE.replace("ports: [443]", "ports: [70000]"),
            "bad.yaml:18:17: spec.network.connect[1].ports[0]: invalid port 70000: ports are 1..=65535",
        ),
        (
            FULL_EXAMPLE.replace("\"9000-9100\"", "\"9100-9000\""),
            "bad.yaml:16:23: spec.network.connect[0].ports[1]: invalid port range \"9100-9000\": the start is after the end",
        ),
        (
            FULL_EXAMPLE.replace("ports: [443]", "ports: []"),
            "bad.yaml:18:16: spec.network.connect[1].ports: empty port list allows nothing; omit `ports` to allow every port",
        ),
        (
            FULL_EXAMPLE.replace("[/run/agent-tools.sock]", "[run/agent-tools.sock]"),
            "bad.yaml:19:12: spec.network.unix[0]: invalid unix address \"run/agent-tools.sock\": it is not absolute (it must start with '/')",
        ),
        (
            FULL_EXAMPLE.replace("[/run/agent-tools.sock]", "[/run/a.sock, \"@\"]"),
            "bad.yaml:19:25: spec.network.unix[1]: invalid unix address \"@\": the abstract name after '@' is empty",
        ),
    ];
    assert_errors(&cases);
}

/// Unknown and missing fields, wrong shapes and YAML syntax: the same format.
#[test]
fn structure_errors_name_file_line_column_and_field() {
    let cases = vec![
        (
            FULL_EXAMPLE.replace("  exec:\n", "  exec:\n    deny: [/bin/]\n"),
            "bad.yaml:8:5: spec.exec: unknown field `deny`, expected `allow`",
        ),
        (
            FULL_EXAMPLE.replace("metadata:\n", "metadata:\n  labels: {}\n"),
            "bad.yaml:4:3: metadata: unknown field `labels`, expected `name`",
        ),
        (
            FULL_EXAMPLE.replace(
                "      - cidr: \"::1/128\"\n",
                "      - cidr: \"::1/128\"\n        proto: tcp\n",
            ),
            "bad.yaml:18:9: spec.network.connect[1]: unknown field `proto`, expected one of `cidr`, `host`, `ports`",
        ),
        (
            FULL_EXAMPLE.replace("kind: TaskPolicy\n", ""),
            "bad.yaml:1:1: missing field `kind`",
        ),
        (
            FULL_EXAMPLE.replace("spec:\n", "spec:\n  files: [/tmp/]\n"),
            "bad.yaml:6:10: spec.files: invalid type: sequence, expected struct FilesSection",
        ),
        (
            "apiVersion: corral.dev/v1\nkind: TaskPolicy: x\n".to_owned(),
            "bad.yaml:2:17: mapping values are not allowed in this context",
        ),
        (
            with_spec("  files:\n    read: [/a, /b\n  network: {}\n"),
            "bad.yaml:8:10: did not find expected ',' or ']', while parsing a flow sequence at line 7 column 11",
        ),
        (String::new(), "bad.yaml:1:1: missing field `apiVersion`"),
    ];
    assert_errors(&cases);
}

#[test]
fn cidr_errors_in_block_style_point_at_the_value() {
    let text = with_spec(
        "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n      - cidr: 192.0.2.7/24\n        ports:\n          - 443\n",
    );
    assert_eq!(
        error_of(&text),
        "bad.yaml:9:15: spec.network.connect[1].cidr: invalid CIDR \"192.0.2.7/24\": host bits are set; did you mean \"192.0.2.0/24\"?",
    );
    let text = with_spec(
        "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n        ports:\n          - 443\n          - 65536\n",
    );
    assert_eq!(
        error_of(&text),
        "bad.yaml:11:13: spec.network.connect[0].ports[1]: invalid port 65536: ports are 1..=65535",
    );
}

#[test]
fn v4_mapped_cidrs_become_ipv4() {
    let p = parse(&with_spec(
        "  network:\n    connect:\n      - cidr: \"::ffff:10.0.0.0/104\"\n        ports: [443]\n",
    ));
    assert_eq!(p.connect[0].destination().to_string(), "10.0.0.0/8");
}

#[test]
fn overlong_paths_are_rejected_at_their_position() {
    let exact = format!("/{}", "x".repeat(EXACT_PATH_MAX));
    let text = with_spec(&format!(
        "  files:\n    read:\n      - /ok\n      - {exact}\n"
    ));
    assert_eq!(
        error_of(&text),
        format!(
            "bad.yaml:9:9: spec.files.read[1]: invalid path \"{exact}\": it is 252 bytes long, more than the 251 bytes an exact rule can hold"
        ),
    );
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let path = Path::new("/nonexistent/corral/policy.yaml");
    let err = load_policy_file(path).expect_err("a missing file should not load");
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/corral/policy.yaml:1:1: cannot read policy file: "),
        "the error should name the file at 1:1, got {text:?}"
    );
    assert_eq!(err.file(), path);
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("corral-policy-{name}-{}", std::process::id()));
        // A leftover from an earlier run of the same pid would make the test lie.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn named(name: &str) -> String {
    format!("apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: {name}\nspec: {{}}\n")
}

#[test]
fn loads_a_directory_sorted_skipping_hidden_and_other_files() {
    let dir = TempDir::new("sorted");
    dir.write("b.yml", &named("second"));
    dir.write("a.yaml", &named("first"));
    dir.write("c.yaml", &named("third"));
    dir.write(".hidden.yaml", "not: a policy\n");
    dir.write("notes.txt", "not a policy");
    fs::create_dir(dir.0.join("sub.yaml")).expect("cannot create a sub directory");
    let policies =
        load_policy_dir(&dir.0).unwrap_or_else(|e| panic!("expected the dir to load: {e}"));
    let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["first", "second", "third"],
        "files are read in name order"
    );
}

#[test]
fn directory_errors_are_all_reported_with_duplicates_naming_both_files() {
    let dir = TempDir::new("dups");
    let first = dir.write("a.yaml", &named("coder"));
    let second = dir.write("b.yaml", &named("coder"));
    let broken = dir.write("c.yaml", &named("Bad"));
    dir.write("d.yaml", &named("fine"));
    let err = load_policy_dir(&dir.0).expect_err("a duplicate and an invalid file should fail");
    let PolicyDirError::Invalid { problems, .. } = &err else {
        panic!("expected PolicyDirError::Invalid, got {err:?}");
    };
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}:4:9: metadata.name: invalid task name \"Bad\": 'B' is not one of [a-z0-9-]",
                broken.display()
            ),
            format!(
                "task \"coder\" is defined twice: in {} and in {}",
                first.display(),
                second.display()
            ),
        ],
        "every problem should be reported: invalid files in file order, then what is wrong with the set"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("2 errors in policy directory ") && !text.contains('\n'),
        "the directory error should be one line counting its problems, got {text:?}"
    );
}

#[test]
fn unreadable_directory_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("corral-policy-missing-{}", std::process::id()));
    let err = load_policy_dir(&dir).expect_err("a missing directory should not load");
    assert!(
        matches!(&err, PolicyDirError::ReadDir { dir: d, .. } if *d == dir),
        "expected ReadDir naming {}, got {err:?}",
        dir.display()
    );
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "the message should name the directory: {err}"
    );
}

#[test]
fn selectors_parse_and_bad_ones_are_refused_at_their_position() {
    let p = parse(&with_spec(
        "  selector:\n    executables: [/usr/local/bin/review-agent]\n    cgroups: [/system.slice/review-agent.service]\n",
    ));
    assert_eq!(strs(&p.select_executables), ["/usr/local/bin/review-agent"]);
    assert_eq!(
        strs(&p.select_cgroups),
        ["/system.slice/review-agent.service"]
    );
    assert!(
        parse(&with_spec("  mode: audit\n"))
            .select_cgroups
            .is_empty(),
        "no selector section selects nothing"
    );
    let long = format!("/{}", "a".repeat(CGROUP_SELECTOR_MAX));
    for (spec, expected) in [
        (
            "  selector:\n    cgroups: [/]\n".to_owned(),
            "bad.yaml:7:15: spec.selector.cgroups[0]: invalid cgroup \"/\": the root cgroup holds every process of the host",
        ),
        (
            "  selector:\n    cgroups: [/sys/fs/cgroup/x.slice]\n".to_owned(),
            "bad.yaml:7:15: spec.selector.cgroups[0]: invalid cgroup \"/sys/fs/cgroup/x.slice\": write the path inside the cgroup hierarchy (as in /proc/PID/cgroup), not its mount point",
        ),
        (
            "  selector:\n    executables: [/usr/bin/]\n".to_owned(),
            "bad.yaml:7:19: spec.selector.executables[0]: invalid executable \"/usr/bin/\": it names a directory (selectors name files)",
        ),
        (
            "  selector:\n    executable: [/usr/bin/x]\n".to_owned(),
            "bad.yaml:7:5: spec.selector: unknown field `executable`, expected `executables` or `cgroups`",
        ),
        (
            format!("  selector:\n    cgroups: [{long}]\n"),
            "more than the 254 a selector can hold",
        ),
    ] {
        let err = error_of(&with_spec(&spec));
        assert!(
            err.contains(expected),
            "expected an error containing {expected:?}, got {err:?}"
        );
    }
}

#[test]
fn two_tasks_selecting_the_same_cgroup_is_an_error_naming_both() {
    let dir = TempDir::new("selectors");
    let sel = |name: &str| {
        format!(
            "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: {name}\nspec:\n  selector:\n    cgroups: [/agents.slice]\n"
        )
    };
    let first = dir.write("a.yaml", &sel("one"));
    let second = dir.write("b.yaml", &sel("two"));
    let err = load_policy_dir(&dir.0).expect_err("one cgroup cannot select two tasks");
    assert!(
        err.to_string().contains(&format!(
            "cgroup \"/agents.slice\" is selected by two tasks: \"one\" in {} and \"two\" in {}",
            first.display(),
            second.display()
        )),
        "got {err}"
    );
}

#[test]
fn a_subtask_must_be_narrower_than_its_parent() {
    let parent = parse(&with_spec(
        "  exec:\n    allow: [/usr/bin/]\n  files:\n    read: [/work/]\n    deny: [/work/.env]\n  network:\n    connect:\n      - cidr: 10.0.0.0/8\n        ports: [443, \"8000-8100\"]\n",
    ));
    let narrower = parse(&with_spec(
        "  exec:\n    allow: [/usr/bin/git]\n  files:\n    read: [/work/src/]\n  network:\n    connect:\n      - cidr: 10.1.0.0/16\n        ports: [8080]\n",
    ));
    assert_eq!(
        wider_than(&narrower, &parent),
        None,
        "a strict subset is narrower"
    );
    for (spec, why) in [
        (
            "  exec:\n    allow: [/usr/local/bin/x]\n",
            "exec.allow /usr/local/bin/x is not allowed to its parent",
        ),
        (
            "  files:\n    write: [/work/]\n",
            "files.write /work/ is not allowed to its parent",
        ),
        (
            "  files:\n    read: [/work/]\n",
            "files.read /work/ reaches /work/.env, which its parent denies (deny it too)",
        ),
        (
            "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n",
            "network.connect 10.0.0.0/8 (ports all) is not allowed to its parent",
        ),
        (
            "  mode: audit\n",
            "it is in audit mode (allows everything) while its parent enforces",
        ),
    ] {
        let child = parse(&with_spec(spec));
        assert_eq!(
            wider_than(&child, &parent).as_deref(),
            Some(why),
            "expected {spec:?} to be found wider"
        );
    }
    let denies_too = parse(&with_spec(
        "  files:\n    read: [/work/]\n    deny: [/work/.env]\n",
    ));
    assert_eq!(
        wider_than(&denies_too, &parent),
        None,
        "reading /work/ is narrower when the child denies /work/.env as well"
    );
}

#[test]
fn includes_add_fragments_and_bad_ones_are_reported_at_the_include() {
    let dir = TempDir::new("include");
    fs::create_dir(dir.0.join("fragments")).expect("cannot create fragments/");
    dir.write(
        "fragments/base.yaml",
        "apiVersion: corral.dev/v1\nkind: PolicyFragment\nmetadata:\n  name: base\nspec:\n  files:\n    read: [/usr/lib/, /etc/ld.so.cache]\n    deny: [/etc/shadow]\n",
    );
    dir.write(
        "fragments/broken.yaml",
        "apiVersion: corral.dev/v1\nkind: PolicyFragment\nmetadata:\n  name: broken\nspec:\n  mode: audit\n",
    );
    let good = dir.write(
        "a.yaml",
        "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: a\nspec:\n  include: [base]\n  files:\n    read: [/work/, /usr/lib/]\n",
    );
    let p = load_policy_file(&good).unwrap_or_else(|e| panic!("expected a.yaml to load: {e}"));
    assert_eq!(
        strs(&p.read),
        ["/work/", "/usr/lib/", "/etc/ld.so.cache"],
        "the fragment's reads are added once each"
    );
    assert_eq!(strs(&p.deny), ["/etc/shadow"], "and its denies");

    let missing = dir.write(
        "b.yaml",
        "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: b\nspec:\n  include:\n    - nope\n",
    );
    let err = load_policy_file(&missing)
        .expect_err("a missing fragment is an error")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}:7:5: spec.include: fragment `nope`: cannot read ",
            missing.display()
        )),
        "expected the error at the include entry, got {err}"
    );
    let broken = dir.write(
        "c.yaml",
        "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: c\nspec:\n  include: [broken]\n",
    );
    let err = load_policy_file(&broken)
        .expect_err("a broken fragment is an error")
        .to_string();
    assert!(
        err.contains("fragment `broken`: ")
            && err.contains("broken.yaml:6:3: spec: unknown field `mode`"),
        "expected the fragment's own file:line:column in the message, got {err}"
    );
}

#[test]
fn the_shipped_runtime_base_fragment_loads() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let text = "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: uses-base\nspec:\n  include: [runtime-base]\n";
    let p = parse_policy(&policies.join("uses-base.yaml"), text)
        .unwrap_or_else(|e| panic!("expected the shipped runtime-base fragment to load: {e}"));
    assert!(
        p.read.iter().any(|r| r.as_str() == "/etc/ld.so.cache"),
        "expected runtime-base to allow the loader cache, got {:?}",
        strs(&p.read)
    );
}
