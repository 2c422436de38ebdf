//! The planner on temporary directories: which rules a spec yields, and what it leaves out.

use std::path::{Path, PathBuf};

use landlock::{AccessFs, BitFlags};

use super::plan::{MAX_RULES, Plan, PlannedRule, SkipReason, plan};
use super::{LandlockError, LandlockSpec, rights, spec_for};
use crate::policy::parse_policy;

/// A temporary directory tree, removed on drop. Its path is canonical.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, files: &[&str]) -> Self {
        let root =
            std::env::temp_dir().join(format!("corral-landlock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", root.display()));
        let root = std::fs::canonicalize(&root)
            .unwrap_or_else(|e| panic!("expected to canonicalize {}: {e}", root.display()));
        for rel in files {
            let path = root.join(rel.trim_end_matches('/'));
            if rel.ends_with('/') {
                std::fs::create_dir_all(&path)
            } else {
                path.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, rel.as_bytes()))
            }
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", path.display()));
        }
        Self(root)
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.0.clone()
        } else {
            self.0.join(rel)
        }
    }

    /// `<root>/<rel>` as a policy writes it (`rel` ending in `/` for a directory rule).
    fn rule(&self, rel: &str) -> String {
        format!("{}/{rel}", self.0.display())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(exec: &[String], read: &[String], write: &[String], deny: &[String]) -> LandlockSpec {
    LandlockSpec {
        task: "t".to_owned(),
        exec: exec.to_vec(),
        read: read.to_vec(),
        write: write.to_vec(),
        deny: deny.to_vec(),
    }
}

fn planned(spec: &LandlockSpec) -> Plan {
    plan(spec, MAX_RULES).unwrap_or_else(|e| panic!("expected {spec:?} to plan: {e}"))
}

/// The rules of `plan` beneath `tree`, as (relative path, rights) sorted by path.
fn rules_in(plan: &Plan, tree: &Tree) -> Vec<(String, BitFlags<AccessFs>)> {
    let mut rules: Vec<_> = plan
        .rules
        .iter()
        .filter_map(|PlannedRule { path, access }| {
            let rel = path.strip_prefix(&tree.0).ok()?;
            Some((rel.to_string_lossy().into_owned(), *access))
        })
        .collect();
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    rules
}

fn read_file() -> BitFlags<AccessFs> {
    rights::READ & rights::FILE_RIGHTS
}

#[test]
fn a_deny_deep_inside_a_read_dir_grants_every_other_entry_on_the_way() {
    let t = Tree::new(
        "deep",
        &["a/b/c", "a/b/d", "a/b/e/", "a/x", "a/y/z", "other/o"],
    );
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("a/b/c")]));
    assert_eq!(
        rules_in(&p, &t),
        [
            // The ancestors may still be listed: the denied path is a file.
            ("a".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/b".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/b/d".to_owned(), read_file()),
            ("a/b/e".to_owned(), rights::READ),
            ("a/x".to_owned(), read_file()),
            ("a/y".to_owned(), rights::READ),
        ],
        "expected a rule for each sibling of b and of c, none for c and none covering a or b"
    );
    assert!(p.skipped.is_empty(), "nothing skipped: {:?}", p.skipped);
}

#[test]
fn a_denied_directory_keeps_its_ancestors_unlistable() {
    let t = Tree::new("deny-dir", &["a/secrets/key", "a/src/main.rs", "a/README"]);
    let p = planned(&spec(
        &[],
        &[t.rule("a/")],
        &[t.rule("a/")],
        &[t.rule("a/secrets/")],
    ));
    let write_file = rights::WRITE & rights::FILE_RIGHTS;
    assert_eq!(
        rules_in(&p, &t),
        [
            ("a/README".to_owned(), read_file()),
            ("a/README".to_owned(), write_file),
            ("a/src".to_owned(), rights::READ),
            ("a/src".to_owned(), rights::WRITE),
        ],
        "expected no rule on a (read_dir there would list a/secrets) nor on a/secrets"
    );
}

#[test]
fn an_exact_deny_of_a_directory_leaves_out_only_the_directory_itself() {
    let t = Tree::new("deny-exact-dir", &["a/d/f", "a/g"]);
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("a/d")]));
    assert_eq!(
        rules_in(&p, &t),
        [
            ("a/d/f".to_owned(), read_file()),
            ("a/g".to_owned(), read_file()),
        ],
        "expected a/d's entries to stay readable while a/d itself gets no rule"
    );
}

#[test]
fn a_deny_outside_every_allowed_path_changes_nothing() {
    let t = Tree::new("deny-outside", &["a/f", "b/secret"]);
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("b/secret")]));
    assert_eq!(rules_in(&p, &t), [("a".to_owned(), rights::READ)]);
}

#[test]
fn a_deny_covering_an_allowed_path_removes_it() {
    let t = Tree::new("deny-covers", &["a/b/f", "a/x"]);
    let p = planned(&spec(
        &[t.rule("a/b/f")],
        &[t.rule("a/b/")],
        &[],
        &[t.rule("a/")],
    ));
    assert!(
        rules_in(&p, &t).is_empty(),
        "expected deny a/ to beat every rule beneath it, got {:?}",
        p.rules
    );
}

#[test]
fn exact_rules_on_files_get_only_file_rights() {
    let t = Tree::new("exact", &["bin/tool", "etc/conf", "tmp/"]);
    let p = planned(&spec(
        &[t.rule("bin/tool")],
        &[t.rule("etc/conf")],
        &[t.rule("etc/conf"), t.rule("tmp/")],
        &[],
    ));
    assert_eq!(
        rules_in(&p, &t),
        [
            ("bin/tool".to_owned(), rights::EXEC),
            ("etc/conf".to_owned(), read_file()),
            ("etc/conf".to_owned(), rights::WRITE & rights::FILE_RIGHTS),
            ("tmp".to_owned(), rights::WRITE),
        ]
    );
}

#[test]
fn missing_symlinked_and_exact_directory_paths_are_skipped_with_their_reason() {
    let t = Tree::new("skipped", &["real/f", "dir/"]);
    std::os::unix::fs::symlink(t.path("real"), t.path("link"))
        .unwrap_or_else(|e| panic!("expected to create a symlink: {e}"));
    let p = planned(&spec(
        &[],
        &[t.rule("missing/"), t.rule("link/"), t.rule("dir")],
        &[t.rule("real/f/")],
        &[],
    ));
    let reasons: Vec<_> = p
        .skipped
        .iter()
        .map(|s| (s.list, s.path.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("read", t.rule("missing/"), SkipReason::Missing),
            (
                "read",
                t.rule("link/"),
                SkipReason::ThroughSymlink {
                    resolved: t.path("real")
                }
            ),
            ("read", t.rule("dir"), SkipReason::ExactRuleOnDirectory),
        ]
    );
    assert_eq!(
        rules_in(&p, &t),
        [("real/f".to_owned(), rights::WRITE & rights::FILE_RIGHTS)],
        "a directory rule that turns out to be a file covers that file"
    );
}

#[test]
fn symlinks_inside_an_expanded_directory_get_no_rule() {
    let t = Tree::new("expand-symlink", &["a/f", "a/deny", "outside/secret"]);
    std::os::unix::fs::symlink(t.path("outside/secret"), t.path("a/escape"))
        .unwrap_or_else(|e| panic!("expected to create a symlink: {e}"));
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("a/deny")]));
    assert_eq!(
        rules_in(&p, &t),
        [
            ("a".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/f".to_owned(), read_file()),
        ],
        "expected a/escape (a symlink out of a/) to get no rule"
    );
}

#[test]
fn a_deny_that_does_not_exist_yet_still_expands_its_directory() {
    let t = Tree::new("deny-later", &["a/f"]);
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("a/.env")]));
    assert_eq!(
        rules_in(&p, &t),
        [
            ("a".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/f".to_owned(), read_file()),
        ],
        "expected a/ to be expanded so that an a/.env created later gets no rule"
    );
}

#[test]
fn a_deny_through_a_symlink_denies_what_it_reaches() {
    let t = Tree::new("deny-link", &["a/real/secret", "a/real/ok"]);
    std::os::unix::fs::symlink(t.path("a/real"), t.path("alias"))
        .unwrap_or_else(|e| panic!("expected to create a symlink: {e}"));
    let p = planned(&spec(&[], &[t.rule("a/")], &[], &[t.rule("alias/secret")]));
    assert_eq!(
        rules_in(&p, &t),
        [
            ("a".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/real".to_owned(), BitFlags::from(AccessFs::ReadDir)),
            ("a/real/ok".to_owned(), read_file()),
        ]
    );
}

#[test]
fn too_many_rules_fail_naming_the_directory() {
    let names: Vec<String> = (0..20).map(|i| format!("big/f{i}")).collect();
    let mut files: Vec<&str> = names.iter().map(String::as_str).collect();
    files.push("big/deny");
    let t = Tree::new("too-many", &files);
    let err = plan(
        &spec(&[], &[t.rule("big/")], &[], &[t.rule("big/deny")]),
        10,
    )
    .expect_err("expected 21 rules to exceed a bound of 10");
    assert!(
        matches!(&err, LandlockError::TooManyRules { dir, max: 10 } if dir == &t.path("big")),
        "expected TooManyRules naming {}, got {err:?}",
        t.path("big").display()
    );
    assert!(
        err.to_string()
            .contains(&t.path("big").display().to_string())
    );
}

#[test]
fn the_interpreter_of_an_allowed_program_is_granted_when_the_policy_reads_it() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("expected current_exe: {e}"));
    let exe = exe.to_string_lossy().into_owned();
    let interp = super::elf_interp::interpreter_of(Path::new(&exe))
        .and_then(|i| std::fs::canonicalize(i).ok())
        .unwrap_or_else(|| panic!("expected {exe} to name an existing interpreter"));
    let interp_dir = format!("{}/", interp.parent().unwrap_or(Path::new("/")).display());
    let without = planned(&spec(std::slice::from_ref(&exe), &[], &[], &[]));
    assert!(
        without.interpreters.is_empty(),
        "expected no interpreter grant when the policy cannot read it, got {:?}",
        without.interpreters
    );
    let with = planned(&spec(&[exe], &[interp_dir], &[], &[]));
    assert_eq!(with.interpreters, std::slice::from_ref(&interp));
    assert!(
        with.rules.contains(&PlannedRule {
            path: interp.clone(),
            access: rights::EXEC
        }),
        "expected an execute rule on {}: {:?}",
        interp.display(),
        with.rules
    );
}

#[test]
fn spec_for_copies_the_policy_paths_as_written() {
    let policy = parse_policy(
        Path::new("inline.yaml"),
        r"
apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: repo-coder
spec:
  exec:
    allow: [/usr/bin/git, /usr/lib/git-core/]
  files:
    read: [/workspace/, /etc/ld.so.cache]
    write: [/tmp/]
    deny: [/workspace/.env]
",
    )
    .unwrap_or_else(|e| panic!("expected the inline policy to parse: {e}"));
    assert_eq!(
        spec_for(&policy),
        LandlockSpec {
            task: "repo-coder".to_owned(),
            exec: vec!["/usr/bin/git".to_owned(), "/usr/lib/git-core/".to_owned()],
            read: vec!["/workspace/".to_owned(), "/etc/ld.so.cache".to_owned()],
            write: vec!["/tmp/".to_owned()],
            deny: vec!["/workspace/.env".to_owned()],
        }
    );
}

#[test]
fn the_spec_round_trips_through_json_and_refuses_unknown_fields() {
    let s = spec(
        &["/usr/bin/git".to_owned()],
        &[],
        &["/tmp/".to_owned()],
        &[],
    );
    let text = serde_json::to_string(&s).unwrap_or_else(|e| panic!("expected to serialize: {e}"));
    let back: LandlockSpec =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("expected to parse {text}: {e}"));
    assert_eq!(back, s);
    let extra = text.replacen('{', r#"{"surprise":1,"#, 1);
    assert!(
        serde_json::from_str::<LandlockSpec>(&extra).is_err(),
        "expected an unknown field to be refused: {extra}"
    );
}
