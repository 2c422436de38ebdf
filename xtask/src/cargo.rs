//! Building with cargo and finding the executables it produced from its JSON messages, so test
//! executables (whose names carry a hash) and `CARGO_TARGET_DIR` need no guessing.
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::{command, paths};

/// An executable cargo built.
pub struct Artifact {
    /// The target's name (`corral`, `vm`, `corral-probe`, ...).
    pub name: String,
    /// The target's kinds (`bin`, `test`, ...).
    pub kinds: Vec<String>,
    pub executable: PathBuf,
}

/// Runs `cargo <args> --message-format=json-render-diagnostics` in the repository and returns
/// the executables it reported (diagnostics and progress still go to the terminal).
pub fn build(args: &[&str]) -> Result<Vec<Artifact>> {
    let mut cmd = Command::new(command::cargo());
    cmd.args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(paths::repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let line = command::describe(&cmd);
    println!("$ {line}");
    let mut child = cmd.spawn().with_context(|| format!("starting `{line}`"))?;
    let stdout = child.stdout.take().context("cargo stdout was not piped")?;
    let mut artifacts = Vec::new();
    for message in BufReader::new(stdout).lines() {
        let message = message.with_context(|| format!("reading the output of `{line}`"))?;
        if let Some(artifact) = parse(&message) {
            artifacts.push(artifact);
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(artifacts)
}

/// The executable of target `name` of kind `kind` among `artifacts`.
pub fn executable<'a>(artifacts: &'a [Artifact], name: &str, kind: &str) -> Result<&'a Path> {
    artifacts
        .iter()
        .find(|a| a.name == name && a.kinds.iter().any(|k| k == kind))
        .map(|a| a.executable.as_path())
        .with_context(|| format!("cargo built no {kind} target named `{name}`"))
}

fn parse(message: &str) -> Option<Artifact> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    if value["reason"] != "compiler-artifact" {
        return None;
    }
    let target = &value["target"];
    Some(Artifact {
        name: target["name"].as_str()?.to_owned(),
        kinds: target["kind"]
            .as_array()?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        executable: PathBuf::from(value["executable"].as_str()?),
    })
}
