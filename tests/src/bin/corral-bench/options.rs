//! The command line of `corral-bench loops`.
use std::path::PathBuf;

/// How to run the micro loops.
pub struct LoopOptions {
    /// The tree `prepare` wrote.
    pub dir: PathBuf,
    /// Wall time spent in each loop, in milliseconds.
    pub ms: u64,
    /// CPU the process (and its children) is pinned to.
    pub cpu: usize,
    /// Drop root to this uid (and gid) before measuring.
    pub user: Option<u32>,
    /// Run only these loops.
    pub only: Option<Vec<String>>,
    /// R1: restrict ourselves with Landlock using this policy's paths first.
    pub landlock: Option<PathBuf>,
    /// R2: install a one-rule seccomp filter first.
    pub seccomp: bool,
}

impl LoopOptions {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (dir, mut rest) = args.split_first().ok_or("loops DIR [OPTS]")?;
        let mut opts = Self {
            dir: PathBuf::from(dir),
            ms: 20,
            cpu: 0,
            user: None,
            only: None,
            landlock: None,
            seccomp: false,
        };
        while let Some((flag, tail)) = rest.split_first() {
            rest = tail;
            if flag == "--seccomp" {
                opts.seccomp = true;
                continue;
            }
            let (value, tail) = rest
                .split_first()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            rest = tail;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag} {value}: not a number"))
            };
            match flag.as_str() {
                "--ms" => opts.ms = number()?,
                "--cpu" => opts.cpu = number()? as usize,
                "--user" => opts.user = Some(number()? as u32),
                "--only" => opts.only = Some(value.split(',').map(str::to_owned).collect()),
                "--landlock" => opts.landlock = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(opts)
    }

    /// Whether loop `name` was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == name))
    }
}
