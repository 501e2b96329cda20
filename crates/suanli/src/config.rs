//! Where the client finds its hub and token: flags, environment, then the config file's profile.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use suanli_types::sbatch::SiteMap;

use crate::client_cmd::{joined, non_empty};

/// Connection options shared by every client verb.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConnArgs {
    /// Hub URL(s), comma-separated, e.g. http://127.0.0.1:8600
    #[arg(long, env = "SUANLI_HUB", value_name = "URLS", global = true)]
    pub hub: Option<String>,
    /// Bearer token
    #[arg(
        long,
        env = "SUANLI_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Profile of the config file to use (default: its default_profile)
    #[arg(long, env = "SUANLI_PROFILE", value_name = "NAME", global = true)]
    pub profile: Option<String>,
    /// Client config file [default: $XDG_CONFIG_HOME/suanli/config.toml or ~/.config/suanli/config.toml]
    #[arg(long, env = "SUANLI_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
}

/// The client config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Hub URL(s), comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
    /// The network's map of Slurm site names (GRES types, partitions, QoS), written by the
    /// operator (docs/SLURM-INPUT.md).
    #[serde(default, skip_serializing_if = "is_default")]
    pub slurm: SiteMap,
}

fn is_default(m: &SiteMap) -> bool {
    *m == SiteMap::default()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub token: String,
    /// Informational: the tenant the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl ClientConfig {
    pub fn load(path: &Path) -> anyhow::Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid client config {}", path.display()))
    }

    /// Writes atomically (temp file + rename) with mode 0600: the file holds tokens.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string_pretty(self).context("cannot encode the client config")?;
        let file_name = path.file_name().context("config path has no file name")?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write()
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// `$XDG_CONFIG_HOME/suanli/config.toml`, else `~/.config/suanli/config.toml`.
pub fn default_config_path() -> PathBuf {
    config_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

fn config_path_from(xdg: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> PathBuf {
    let base = match (xdg.filter(|x| Path::new(x).is_absolute()), home) {
        (Some(x), _) => PathBuf::from(x),
        (None, Some(h)) => PathBuf::from(h).join(".config"),
        (None, None) => PathBuf::from(".config"),
    };
    base.join("suanli").join("config.toml")
}

const NO_HUB: &str =
    "no hub configured: run `suanli up`, or pass --hub/SUANLI_HUB and --token/SUANLI_TOKEN";

impl ConnArgs {
    /// The config file in use: `--config`/`SUANLI_CONFIG`, else the default path.
    pub fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(default_config_path)
    }

    /// The config file's map of Slurm site names, checked; none without a config file.
    pub fn site_map(&self) -> anyhow::Result<SiteMap> {
        let path = self.config_path();
        if !path.exists() {
            return Ok(SiteMap::default());
        }
        let map = ClientConfig::load(&path)?.slurm;
        map.check()
            .map_err(|m| anyhow::anyhow!("invalid client config {}: {m}", path.display()))?;
        Ok(map)
    }

    /// A client for the resolved hub URLs and token.
    pub fn client(&self) -> anyhow::Result<suanli_client::Client> {
        let (hubs, token) = self.resolve()?;
        Ok(suanli_client::Client::new(hubs, token))
    }

    /// Reads the config file only when flags/env leave something open.
    fn resolve(&self) -> anyhow::Result<(Vec<String>, String)> {
        let path = self.config_path();
        let need_file = self.hub.is_none() || self.token.is_none() || self.profile.is_some();
        let file = if !need_file {
            None
        } else if path.exists() {
            Some(ClientConfig::load(&path)?)
        } else if self.config.is_some() {
            bail!("client config {} does not exist", path.display());
        } else {
            None
        };
        self.resolve_with(file.as_ref(), &path)
    }

    fn resolve_with(
        &self,
        file: Option<&ClientConfig>,
        path: &Path,
    ) -> anyhow::Result<(Vec<String>, String)> {
        let name = self
            .profile
            .clone()
            .or_else(|| file.and_then(|f| f.default_profile.clone()));
        let profile = name
            .as_ref()
            .and_then(|n| file.and_then(|f| f.profiles.get(n)));
        // A missing profile matters only when asked for by name or needed for the token.
        if let Some(name) = &name
            && profile.is_none()
            && (self.profile.is_some() || self.token.is_none())
        {
            let known = joined(
                file.into_iter().flat_map(|f| f.profiles.keys()),
                ", ",
                "none",
            );
            bail!(
                "profile {name:?} is not in {} (known: {known})",
                path.display()
            );
        }
        let hub = self
            .hub
            .clone()
            .or_else(|| file.and_then(|f| f.hub.clone()));
        let token = self
            .token
            .clone()
            .or_else(|| profile.map(|p| p.token.clone()));
        let (Some(hub), Some(token)) = (hub, token) else {
            bail!(NO_HUB)
        };
        let hubs = non_empty(hub.split(','));
        if hubs.is_empty() {
            bail!(NO_HUB);
        }
        Ok((hubs, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_cmd::Scratch;

    fn sample() -> ClientConfig {
        let mut c = ClientConfig {
            hub: Some("http://127.0.0.1:8600, http://127.0.0.1:8601".into()),
            default_profile: Some("demo".into()),
            ..Default::default()
        };
        c.profiles.insert(
            "demo".into(),
            Profile {
                token: "t-demo".into(),
                tenant: Some("demo-sme".into()),
            },
        );
        c.profiles.insert(
            "operator".into(),
            Profile {
                token: "t-op".into(),
                tenant: None,
            },
        );
        c
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/suanli/config.toml");
        let c = sample();
        c.save(&path).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Overwrite in place; no temp file left behind.
        ClientConfig::default().save(&path).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), ClientConfig::default());
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn load_rejects_unknown_keys() {
        let dir = Scratch::new();
        let path = dir.file("config.toml", "hub = \"http://x\"\ntokn = \"y\"\n");
        let e = format!("{:#}", ClientConfig::load(&path).unwrap_err());
        assert!(e.contains("config.toml") && e.contains("tokn"), "{e}");
    }

    #[test]
    fn profile_resolution_order() {
        let c = sample();
        let p = Path::new("cfg.toml");
        let none = ConnArgs::default();
        // Default profile from the file.
        let (hubs, token) = none.resolve_with(Some(&c), p).unwrap();
        assert_eq!(hubs, ["http://127.0.0.1:8600", "http://127.0.0.1:8601"]);
        assert_eq!(token, "t-demo");
        // --profile beats default_profile.
        let op = ConnArgs {
            profile: Some("operator".into()),
            ..Default::default()
        };
        assert_eq!(op.resolve_with(Some(&c), p).unwrap().1, "t-op");
        // Flags beat the profile.
        let flags = ConnArgs {
            hub: Some("http://h:1".into()),
            token: Some("t-flag".into()),
            ..op.clone()
        };
        assert_eq!(
            flags.resolve_with(Some(&c), p).unwrap(),
            (vec!["http://h:1".to_string()], "t-flag".to_string())
        );
        // Unknown profile, no file, empty hub list.
        let bad = ConnArgs {
            profile: Some("nope".into()),
            ..Default::default()
        };
        assert!(
            bad.resolve_with(Some(&c), p)
                .unwrap_err()
                .to_string()
                .contains("demo, operator")
        );
        assert!(
            none.resolve_with(None, p)
                .unwrap_err()
                .to_string()
                .starts_with("no hub configured")
        );
        let empty = ConnArgs {
            hub: Some(" , ".into()),
            token: Some("t".into()),
            ..Default::default()
        };
        assert!(empty.resolve_with(None, p).is_err());
    }

    #[test]
    fn default_path() {
        let p = config_path_from(Some("/x".into()), Some("/home/u".into()));
        assert_eq!(p, Path::new("/x/suanli/config.toml"));
        let p = config_path_from(Some("".into()), Some("/home/u".into()));
        assert_eq!(p, Path::new("/home/u/.config/suanli/config.toml"));
    }
}
