//! Running Slurm's commands (`sbatch`, `squeue`, `scontrol`, `scancel`, `sinfo`) with the configured
//! `SLURM_CONF` and directory, bounded in time, and telling a controller that cannot be reached
//! from a refusal.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use super::parse;

/// What of the agent's environment Slurm's commands see: where programs are, and the Slurm
/// configuration the agent was started with.
const KEPT_VARS: [&str; 2] = ["PATH", "SLURM_CONF"];

/// How long a Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed Slurm command.
#[derive(Clone, Debug)]
pub(crate) struct CmdError {
    pub message: String,
    /// The controller could not be reached: try again later; not the job's fault.
    pub transient: bool,
}

/// Runs Slurm's commands.
#[derive(Clone, Debug)]
pub(crate) struct SlurmCli {
    /// `SLURM_CONF`; `None`: the agent's own environment decides.
    pub conf: Option<PathBuf>,
    /// Where the commands are; `None`: `PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl SlurmCli {
    pub async fn run(&self, program: &str, args: &[String]) -> Result<String, CmdError> {
        let mut cmd = match &self.bin_dir {
            Some(d) => Command::new(d.join(program)),
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // sbatch passes its environment on to the job (`--export=ALL`): nothing of the agent's
        // (its site token may be in SUANLI_SITE_TOKEN, devices it happens to see), only what
        // the commands need; the batch script sets the job's own (see `script.rs`).
        cmd.env_clear();
        for (k, v) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| KEPT_VARS.contains(&k)) {
                cmd.env(k, v);
            }
        }
        if let Some(c) = &self.conf {
            cmd.env("SLURM_CONF", c);
        }
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(CmdError {
                    message: format!("cannot run {program}: {e}"),
                    transient: e.kind() != std::io::ErrorKind::NotFound,
                });
            }
            Err(_) => {
                return Err(CmdError {
                    message: format!("{program} did not answer within {COMMAND_TIMEOUT:?}"),
                    transient: true,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let detail = if stderr.is_empty() {
            format!("{program} exited with {}", out.status)
        } else {
            stderr
        };
        Err(CmdError {
            transient: parse::is_transient_error(&detail),
            message: detail,
        })
    }
}
