//! The dataset record: what a data owner registers (`suanli dataset register FILE.toml`, or
//! JSON to `POST /v1/datasets`): where the data resides, how it is classified, and the policy
//! jobs on it run under.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::ids::validate_slug;
use suanli_types::state::UnknownName;
use suanli_types::{CenterId, SpecError};

/// How sensitive a dataset is: who may compute on it, and how its outputs leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    /// Any tenant may compute on it; outputs leave freely.
    Public,
    /// Only the owner and tenants with a grant; outputs leave through the airlock, one review.
    Restricted,
    /// As restricted, and a release needs two reviewers.
    Sensitive,
}

impl Classification {
    pub const ALL: [Classification; 3] = [
        Classification::Public,
        Classification::Restricted,
        Classification::Sensitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Restricted => "restricted",
            Classification::Sensitive => "sensitive",
        }
    }

    /// Whether a tenant other than the owner needs a grant, and outputs pass the airlock.
    pub fn is_protected(self) -> bool {
        self != Classification::Public
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Classification {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Classification::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "classification",
                input: s.to_string(),
                expected: Classification::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The strictest classification of several (sensitive > restricted > public); public for none.
pub fn strictest(c: impl IntoIterator<Item = Classification>) -> Classification {
    c.into_iter().max().unwrap_or(Classification::Public)
}

/// What a file must satisfy to leave (checked by [`check_file`](crate::check_file)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputRules {
    /// The largest file that may leave, in bytes; none: any size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// File extensions without the dot, lowercase (`["csv", "png"]`, `tar.gz` too); empty: any.
    #[serde(default)]
    pub allowed_types: Vec<String>,
    /// Text that must not appear in a file (compared without regard to ASCII case), e.g. an
    /// identifier column's name.
    #[serde(default)]
    pub forbidden: Vec<String>,
}

/// What jobs on a dataset may do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DataPolicy {
    /// Network egress allowed to jobs on this data (default: cut).
    pub egress: bool,
    /// The job commands allowed, by SHA-256 of the command text (64 lowercase hex digits);
    /// empty: any command.
    pub commands: Vec<String>,
    pub outputs: OutputRules,
}

/// A dataset, as registered by its owner tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A short id: lowercase letters, digits and `-`.
    pub name: String,
    /// The centers that hold it (1 to 8): jobs on it run only there.
    pub homes: Vec<CenterId>,
    /// Where it is at each home center: an absolute path.
    pub path: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    pub classification: Classification,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub policy: DataPolicy,
}

/// The most home centers a dataset names.
pub const MAX_HOMES: usize = 8;
/// The longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;
/// The most allowed commands.
pub const MAX_COMMANDS: usize = 256;
/// The most allowed file types, and the most forbidden texts.
pub const MAX_RULE_ENTRIES: usize = 64;
/// The longest allowed file type, in bytes.
pub const MAX_TYPE_BYTES: usize = 16;
/// The longest forbidden text, in characters.
pub const MAX_FORBIDDEN_CHARS: usize = 256;

/// Whether `s` is 64 lowercase hex digits (a SHA-256).
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `t` is a file type as [`OutputRules::allowed_types`] takes it: lowercase letters
/// and digits, dots only between them (`tar.gz`).
fn is_file_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TYPE_BYTES
        && t.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl OutputRules {
    /// Checks the rules; field paths start with `at` (`policy.outputs`).
    pub fn validate(&self, at: &str) -> Result<(), SpecError> {
        if self.max_bytes == Some(0) {
            return Err(SpecError::new(
                format!("{at}.max_bytes"),
                "must be at least 1 (leave it out for any size)",
            ));
        }
        if self.allowed_types.len() > MAX_RULE_ENTRIES {
            return Err(SpecError::new(
                format!("{at}.allowed_types"),
                format!("at most {MAX_RULE_ENTRIES} types"),
            ));
        }
        for (i, t) in self.allowed_types.iter().enumerate() {
            if !is_file_type(t) {
                return Err(SpecError::new(
                    format!("{at}.allowed_types[{i}]"),
                    format!(
                        "{t:?} is not a file extension: 1 to {MAX_TYPE_BYTES} lowercase letters \
                         and digits without the leading dot, e.g. \"csv\" or \"tar.gz\""
                    ),
                ));
            }
            if self.allowed_types[..i].contains(t) {
                return Err(SpecError::new(
                    format!("{at}.allowed_types[{i}]"),
                    format!("{t:?} is listed twice"),
                ));
            }
        }
        if self.forbidden.len() > MAX_RULE_ENTRIES {
            return Err(SpecError::new(
                format!("{at}.forbidden"),
                format!("at most {MAX_RULE_ENTRIES} texts"),
            ));
        }
        for (i, f) in self.forbidden.iter().enumerate() {
            if f.trim().is_empty() || f.chars().count() > MAX_FORBIDDEN_CHARS {
                return Err(SpecError::new(
                    format!("{at}.forbidden[{i}]"),
                    format!("must be 1 to {MAX_FORBIDDEN_CHARS} characters, not only spaces"),
                ));
            }
            if f.chars().any(char::is_control) {
                return Err(SpecError::new(
                    format!("{at}.forbidden[{i}]"),
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }
}

impl DatasetSpec {
    /// Checks every field; the error names the first bad one (`homes[1]`,
    /// `policy.outputs.allowed_types[0]`, ...).
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_slug(&self.name).map_err(|m| SpecError::new("name", m))?;
        if self.homes.is_empty() || self.homes.len() > MAX_HOMES {
            return Err(SpecError::new(
                "homes",
                format!("name 1 to {MAX_HOMES} centers that hold the data"),
            ));
        }
        for (i, h) in self.homes.iter().enumerate() {
            validate_slug(h.as_str()).map_err(|m| SpecError::new(format!("homes[{i}]"), m))?;
            if self.homes[..i].contains(h) {
                return Err(SpecError::new(
                    format!("homes[{i}]"),
                    format!("center {h} is listed twice"),
                ));
            }
        }
        self.validate_path()?;
        if self.description.chars().count() > MAX_DESCRIPTION {
            return Err(SpecError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        if self.policy.commands.len() > MAX_COMMANDS {
            return Err(SpecError::new(
                "policy.commands",
                format!("at most {MAX_COMMANDS} commands"),
            ));
        }
        for (i, c) in self.policy.commands.iter().enumerate() {
            if !is_sha256_hex(c) {
                return Err(SpecError::new(
                    format!("policy.commands[{i}]"),
                    format!(
                        "{c:?} is not the SHA-256 of a command: 64 lowercase hex digits \
                         (sha256sum of the command text)"
                    ),
                ));
            }
        }
        self.policy.outputs.validate("policy.outputs")
    }

    fn validate_path(&self) -> Result<(), SpecError> {
        let p = &self.path;
        let bad = |m: &str| Err(SpecError::new("path", m));
        if !p.starts_with('/') {
            return bad("must be an absolute path at the home centers (start with '/')");
        }
        if p.len() > MAX_PATH_BYTES {
            return bad("must be at most 1024 bytes");
        }
        if p.chars().any(char::is_control) {
            return bad("must not contain control characters");
        }
        if p.split('/').any(|c| c == "..") {
            return bad("must not contain '..'");
        }
        if p.split('/').all(str::is_empty) {
            return bad("must name a folder or file below '/', not the root");
        }
        Ok(())
    }

    /// Whether the policy allows a job to run `command` (its text, as the job spec has it):
    /// `sha256_hex` is the SHA-256 of that text (the caller hashes it; this crate has no hash).
    pub fn allows_command(&self, sha256_hex: &str) -> bool {
        self.policy.commands.is_empty()
            || self
                .policy
                .commands
                .iter()
                .any(|c| c.eq_ignore_ascii_case(sha256_hex))
    }
}

/// Whether two datasets' paths at a center are the same folder or one holds the other
/// (`/data/a` and `/data/a/b`; not `/data/a` and `/data/ab`): then one dataset's jobs would read
/// the other's data.
pub fn paths_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let within = |x: &str, y: &str| x == y || x.strip_prefix(y).is_some_and(|r| r.starts_with('/'));
    within(a, b) || within(b, a) || a.is_empty() || b.is_empty()
}

/// The environment variable a job reads the dataset's mount point from:
/// `SUANLI_DATASET_<NAME upper-cased, '-' -> '_'>`.
pub fn env_name(dataset: &str) -> String {
    let mut v = String::with_capacity(15 + dataset.len());
    v.push_str("SUANLI_DATASET_");
    v.extend(dataset.chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DatasetSpec {
        DatasetSpec {
            name: "sz-clinics-2025".into(),
            homes: vec![CenterId::from("pcl-cb2"), CenterId::from("sz-sc")],
            path: "/data/clinics/2025".into(),
            size_bytes: 12 << 30,
            classification: Classification::Restricted,
            description: "Outpatient visits of Shenzhen clinics, 2025".into(),
            policy: DataPolicy {
                egress: false,
                commands: vec!["a".repeat(64)],
                outputs: OutputRules {
                    max_bytes: Some(10 << 20),
                    allowed_types: vec!["csv".into(), "png".into(), "tar.gz".into()],
                    forbidden: vec!["patient_id".into()],
                },
            },
        }
    }

    #[test]
    fn a_dataset_validates_and_errors_name_the_field() {
        spec().validate().unwrap();
        let bad = |f: &dyn Fn(&mut DatasetSpec), field: &str| {
            let mut d = spec();
            f(&mut d);
            let e = d.validate().unwrap_err();
            assert_eq!(e.field, field, "{e}");
        };
        bad(&|d| d.name = "SZ Clinics".into(), "name");
        bad(&|d| d.name = String::new(), "name");
        bad(&|d| d.homes.clear(), "homes");
        bad(
            &|d| d.homes = (0..9).map(|i| CenterId::new(format!("c{i}"))).collect(),
            "homes",
        );
        bad(&|d| d.homes[1] = CenterId::from("SZ SC"), "homes[1]");
        bad(&|d| d.homes[1] = CenterId::from("pcl-cb2"), "homes[1]");
        bad(&|d| d.path = "data/clinics".into(), "path");
        bad(&|d| d.path = "/data/../etc".into(), "path");
        bad(&|d| d.path = "/data/..".into(), "path");
        bad(&|d| d.path = "/data/a\nb".into(), "path");
        bad(&|d| d.path = format!("/{}", "a".repeat(1024)), "path");
        bad(&|d| d.path = "/".into(), "path");
        bad(&|d| d.path = "//".into(), "path");
        bad(&|d| d.description = "x".repeat(2001), "description");
        bad(
            &|d| d.policy.commands[0] = "A".repeat(64),
            "policy.commands[0]",
        );
        bad(
            &|d| d.policy.commands.push("ab".into()),
            "policy.commands[1]",
        );
        bad(
            &|d| d.policy.commands = vec!["a".repeat(64); 257],
            "policy.commands",
        );
        bad(
            &|d| d.policy.outputs.max_bytes = Some(0),
            "policy.outputs.max_bytes",
        );
        bad(
            &|d| d.policy.outputs.allowed_types[0] = ".csv".into(),
            "policy.outputs.allowed_types[0]",
        );
        bad(
            &|d| d.policy.outputs.allowed_types[1] = "PNG".into(),
            "policy.outputs.allowed_types[1]",
        );
        bad(
            &|d| d.policy.outputs.allowed_types[2] = "tar..gz".into(),
            "policy.outputs.allowed_types[2]",
        );
        bad(
            &|d| d.policy.outputs.allowed_types.push("csv".into()),
            "policy.outputs.allowed_types[3]",
        );
        bad(
            &|d| d.policy.outputs.forbidden[0] = "  ".into(),
            "policy.outputs.forbidden[0]",
        );
        bad(
            &|d| d.policy.outputs.forbidden.push("a\tb".into()),
            "policy.outputs.forbidden[1]",
        );
        // Boundaries that pass.
        let mut d = spec();
        d.description = "说".repeat(2000);
        d.path = format!("/{}", "a".repeat(1023));
        d.homes = (0..8).map(|i| CenterId::new(format!("c{i}"))).collect();
        d.policy = DataPolicy::default();
        d.validate().unwrap();
    }

    #[test]
    fn the_wire_form_is_kebab_case_strict_and_defaulted() {
        let d: DatasetSpec = serde_json::from_str(
            r#"{"name": "demo-public", "homes": ["pcl-cb2"], "path": "/data/demo",
                "size_bytes": 1024, "classification": "public"}"#,
        )
        .unwrap();
        assert_eq!(d.policy, DataPolicy::default());
        assert!(!d.policy.egress);
        assert_eq!(d.description, "");
        d.validate().unwrap();
        let d: DatasetSpec = serde_json::from_str(
            r#"{"name": "x", "homes": ["c"], "path": "/d", "size_bytes": 1,
                "classification": "sensitive", "policy": {"outputs": {"max_bytes": 5}}}"#,
        )
        .unwrap();
        assert_eq!(d.classification, Classification::Sensitive);
        assert_eq!(d.policy.outputs.max_bytes, Some(5));
        assert!(d.policy.outputs.allowed_types.is_empty());
        for bad in [
            r#"{"name": "x", "homes": ["c"], "path": "/d", "size_bytes": 1, "classification": "secret"}"#,
            r#"{"name": "x", "homes": ["c"], "path": "/d", "size_bytes": 1, "classification": "public", "owner": "t"}"#,
            r#"{"name": "x", "homes": ["c"], "path": "/d", "size_bytes": 1, "classification": "public", "policy": {"egres": true}}"#,
            r#"{"name": "x", "homes": ["c"], "path": "/d", "size_bytes": 1, "classification": "public", "policy": {"outputs": {"max": 1}}}"#,
        ] {
            assert!(serde_json::from_str::<DatasetSpec>(bad).is_err(), "{bad}");
        }
        let s = spec();
        let back: DatasetSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn classifications_parse_order_and_merge() {
        for c in Classification::ALL {
            assert_eq!(c.as_str().parse::<Classification>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let e = "secret".parse::<Classification>().unwrap_err().to_string();
        assert!(e.contains("public, restricted, sensitive"), "{e}");
        use Classification::*;
        assert_eq!(strictest([]), Public);
        assert_eq!(strictest([Public, Restricted]), Restricted);
        assert_eq!(strictest([Sensitive, Public, Restricted]), Sensitive);
        assert!(!Public.is_protected() && Restricted.is_protected() && Sensitive.is_protected());
    }

    #[test]
    fn the_environment_variable_is_upper_snake_case() {
        assert_eq!(
            env_name("sz-clinics-2025"),
            "SUANLI_DATASET_SZ_CLINICS_2025"
        );
        assert_eq!(env_name("demo"), "SUANLI_DATASET_DEMO");
    }

    #[test]
    fn commands_are_allowed_by_digest() {
        let d = spec();
        assert!(d.allows_command(&"a".repeat(64)));
        assert!(!d.allows_command(&"b".repeat(64)));
        let mut any = spec();
        any.policy.commands.clear();
        assert!(any.allows_command("anything"));
    }
}
