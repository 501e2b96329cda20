//! Running Slurm's commands (`sbatch`, `squeue`, `scontrol`, `scancel`, `sinfo`) with the configured
//! `SLURM_CONF` and directory, bounded in time, and telling a controller that cannot be reached
//! from a refusal.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use super::parse;
use crate::env::DEVICE_VARS;

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
        if let Some(c) = &self.conf {
            cmd.env("SLURM_CONF", c);
        }
        // sbatch passes its environment on to the job (`--export=ALL`): not the agent's secrets
        // (its site token may be in SUANLI_SITE_TOKEN) nor devices it happens to see.
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("SUANLI_") || DEVICE_VARS.contains(&k))
            {
                cmd.env_remove(k);
            }
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
