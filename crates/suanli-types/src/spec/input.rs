//! What a spec may carry onto the machine that runs it: the job's name and command, environment
//! variables and working files.
//!
//! Everything refused here would otherwise pass submit and fail (or worse, succeed) at run time: a
//! NUL byte cannot cross `execve`, an environment over Linux's per-string limit makes `execve`
//! fail, `a` and `a/b` cannot both be written, and `PATH` or `LD_PRELOAD` would change which `sh`
//! the agent starts and what it loads. docs/SECURITY.md ("Input validation") lists every rule.

use std::collections::BTreeMap;

use super::SpecError;

/// At most this many environment variables.
pub const MAX_ENV_VARS: usize = 256;
/// The environment's size, counted as `execve` sees it: `KEY=VALUE` and a terminating NUL per
/// variable. Half of Linux's 128 KiB limit on one string (`MAX_ARG_STRLEN`), so that no single
/// variable can reach it and the environment, the 64 KiB command and the agent's own variables
/// stay far below the 2 MiB `ARG_MAX` of a default stack.
pub const MAX_ENV_BYTES: usize = 64 << 10;
/// At most this many working files.
pub const MAX_FILES: usize = 1000;
/// Working files in total: paths and contents, in bytes.
pub const MAX_FILES_BYTES: usize = 1 << 20;
/// A working file's path, in bytes; the attempt folder's own path comes on top and Linux allows
/// 4096 (`PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 1024;
/// One component of a working file's path, in bytes (`NAME_MAX` of Linux file systems).
pub const MAX_PATH_COMPONENT_BYTES: usize = 255;

/// Variables that change how the agent starts the job (which `sh` runs, what the dynamic loader
/// loads, how the shell reads the command) or that the agent sets itself (identity, folders).
/// The list of the dynamic loader's variables is glibc's own (`UNSECURE_ENVVARS`, which it drops
/// for set-user-id programs); every `LD_*` name is refused by prefix besides.
pub const RESERVED_ENV: &[&str] = &[
    // Where programs are found, who runs, where: set by the agent.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    // The shell that runs the command: startup files, word splitting, options, `cd`.
    "ENV",
    "BASH_ENV",
    "IFS",
    "CDPATH",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    // glibc: what the dynamic loader and libc load before `main`.
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
];

/// Reserved by prefix: the dynamic loader (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`, ...),
/// the agent's own `SUANLI_*` variables, and Slurm's `SLURM_*`, which Slurm sets for a job.
pub const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "SUANLI_", "SLURM_"];

/// Reserved by suffix: the vendors' visible-devices variables (`CUDA_VISIBLE_DEVICES`,
/// `ASCEND_RT_VISIBLE_DEVICES`, ..., and the container runtimes' `NVIDIA_VISIBLE_DEVICES` and
/// `ASCEND_VISIBLE_DEVICES`): a job sees the cards it was placed on, set by the agent.
pub const RESERVED_ENV_SUFFIXES: &[&str] = &["_VISIBLE_DEVICES"];

/// The first path component the agent keeps for itself in an attempt folder (`.suanli/`, with
/// the Slurm script and output): no working file may start with it.
pub const RESERVED_FILE_PREFIX: &str = ".suanli";

/// Checks a variable's name: a portable shell name, not reserved. The message says why not.
pub fn check_env_name(key: &str) -> Result<(), String> {
    let portable = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if !portable {
        return Err(
            "variable names use letters, digits and '_' and do not start with a digit".into(),
        );
    }
    if let Some(p) = RESERVED_ENV_PREFIXES.iter().find(|p| key.starts_with(**p)) {
        return Err(match *p {
            "SUANLI_" => "SUANLI_ variables are set by suanli".to_string(),
            "SLURM_" => "SLURM_ variables are set by Slurm".to_string(),
            _ => reserved_message(key),
        });
    }
    if RESERVED_ENV_SUFFIXES.iter().any(|s| key.ends_with(s)) {
        return Err("the cards a job sees are set by the agent from its placement".into());
    }
    if RESERVED_ENV.contains(&key) {
        return Err(reserved_message(key));
    }
    Ok(())
}

fn reserved_message(key: &str) -> String {
    format!(
        "{key} would change how the agent starts the job; set it in the command instead \
         (`export {key}=...; ...`)"
    )
}

/// Checks the name: text on one line, no control characters (a name is printed in tables and
/// logs, where a newline or an escape sequence would forge output).
pub(super) fn check_name(name: &str) -> Result<(), SpecError> {
    if name.chars().any(char::is_control) {
        return Err(SpecError::new(
            "name",
            "must not contain control characters (NUL, newline, escape, ...)",
        ));
    }
    Ok(())
}

/// Checks the command: no NUL byte (it cannot be passed to `sh -c`).
pub(super) fn check_command(command: &str) -> Result<(), SpecError> {
    if command.contains('\0') {
        return Err(SpecError::new("command", "must not contain a NUL byte"));
    }
    Ok(())
}

/// Checks the environment: count, names, values without NUL bytes, total size.
pub(super) fn check_env(env: &BTreeMap<String, String>) -> Result<(), SpecError> {
    if env.len() > MAX_ENV_VARS {
        return Err(SpecError::new(
            "env",
            format!("more than {MAX_ENV_VARS} variables"),
        ));
    }
    let mut bytes = 0usize;
    for (k, v) in env {
        check_env_name(k).map_err(|m| SpecError::new(env_field(k), m))?;
        if v.contains('\0') {
            return Err(SpecError::new(
                env_field(k),
                "the value must not contain a NUL byte",
            ));
        }
        bytes = bytes.saturating_add(k.len() + v.len() + 2);
    }
    if bytes > MAX_ENV_BYTES {
        return Err(SpecError::new(
            "env",
            format!(
                "the environment exceeds {} KiB (each variable counted as KEY=VALUE and a NUL)",
                MAX_ENV_BYTES >> 10
            ),
        ));
    }
    Ok(())
}

/// Checks the working files: count, each path, contents without NUL bytes, no path that is both
/// a file and another file's folder.
pub(super) fn check_files(files: &BTreeMap<String, String>) -> Result<(), SpecError> {
    if files.len() > MAX_FILES {
        return Err(SpecError::new(
            "files",
            format!("more than {MAX_FILES} working files"),
        ));
    }
    let mut bytes = 0usize;
    for (path, content) in files {
        let field = files_field(path);
        check_path(path).map_err(|m| SpecError::new(field.clone(), m))?;
        if let Some(folder) = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .find(|p| files.contains_key(*p))
        {
            return Err(SpecError::new(
                field,
                format!(
                    "conflicts with {}: a path cannot be both a file and a folder",
                    files_field(folder)
                ),
            ));
        }
        if content.contains('\0') {
            return Err(SpecError::new(
                field,
                "the content must not contain a NUL byte; working files carry text \
                 (encode binary data, e.g. as base64)",
            ));
        }
        bytes = bytes.saturating_add(path.len() + content.len());
    }
    if bytes > MAX_FILES_BYTES {
        return Err(SpecError::new(
            "files",
            "working files exceed 1 MiB in total",
        ));
    }
    Ok(())
}

/// A relative path inside an attempt folder, as working files and outputs name them: no
/// control characters, no `.`, `..` or empty components, not the agent's own names.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    check_path(path)
}

fn check_path(path: &str) -> Result<(), String> {
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters (NUL, newline, ...)".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err("must be a relative path without '.', '..' or empty components".into());
    }
    if path.split('/').any(|c| c.len() > MAX_PATH_COMPONENT_BYTES) {
        return Err(format!(
            "a path component is longer than {MAX_PATH_COMPONENT_BYTES} bytes"
        ));
    }
    if path.starts_with(RESERVED_FILE_PREFIX) {
        return Err(format!(
            "names starting with {RESERVED_FILE_PREFIX} are kept for the agent's own files"
        ));
    }
    Ok(())
}

/// How a field path shows a map key: at most this many characters of it.
const SHOWN_KEY_CHARS: usize = 64;

/// `env.NAME` for a plain name, else `env."..."` quoted (and shortened: the key may be long or
/// hold control characters).
fn env_field(key: &str) -> String {
    let plain = key.len() <= SHOWN_KEY_CHARS
        && !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("env.{key}")
    } else {
        format!("env.{}", shown(key))
    }
}

/// `files."a/b"`, shortened when long.
fn files_field(path: &str) -> String {
    format!("files.{}", shown(path))
}

fn shown(key: &str) -> String {
    match key.char_indices().nth(SHOWN_KEY_CHARS) {
        Some((i, _)) => format!("{:?}...", &key[..i]),
        None => format!("{key:?}"),
    }
}
