//! The automatic output rules: what a file that asks to leave is checked against before any
//! reviewer sees it, and the rules of several datasets merged strictest-wins.

use serde::{Deserialize, Serialize};

use crate::dataset::OutputRules;

/// One automatic check a file failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breach {
    /// The rule: `max_bytes`, `allowed_types` or `forbidden`.
    pub rule: String,
    /// In words, naming the file and the rule's value.
    pub detail: String,
}

/// The rule names, as [`Breach::rule`] and the history name them.
pub const RULE_MAX_BYTES: &str = "max_bytes";
pub const RULE_ALLOWED_TYPES: &str = "allowed_types";
pub const RULE_FORBIDDEN: &str = "forbidden";

/// The one entry of [`OutputRules::allowed_types`] after [`merged_rules`] of datasets whose
/// allowed types have nothing in common: no file name ends so (a name has no '/'), so no
/// file may leave. (An empty list would mean any type.)
pub const NO_TYPE_ALLOWED: &str = "/none";

/// Whether `hay` contains `needle`, ASCII letters compared without regard to case (other
/// bytes exactly).
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    if needle.len() > hay.len() {
        return false;
    }
    let first = first.to_ascii_lowercase();
    (0..=hay.len() - needle.len()).any(|i| {
        hay[i].to_ascii_lowercase() == first
            && hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
    })
}

/// Whether the file name (the part of `path` after its last '/') has type `t`: it ends with
/// `.t`, without regard to ASCII case, after at least one character.
fn has_type(name: &str, t: &str) -> bool {
    name.len() > t.len() + 1
        && name.is_char_boundary(name.len() - t.len() - 1)
        && name[name.len() - t.len() - 1..].eq_ignore_ascii_case(&format!(".{t}"))
}

/// Checks one file that asks to leave: `path` as the job left it ('/'-separated), its `size`
/// in bytes and its `content`. Each rule the file breaks gives a breach (a forbidden text, one
/// per text found); none: it passes. The forbidden texts are searched in the bytes, ASCII
/// letters without regard to case.
pub fn check_file(rules: &OutputRules, path: &str, size: u64, content: &[u8]) -> Vec<Breach> {
    let mut out = Vec::new();
    if let Some(max) = rules.max_bytes {
        let size = size.max(content.len() as u64);
        if size > max {
            out.push(Breach {
                rule: RULE_MAX_BYTES.into(),
                detail: format!("{path} is {size} bytes, more than the {max} bytes allowed"),
            });
        }
    }
    if !rules.allowed_types.is_empty() {
        let name = path.rsplit('/').next().unwrap_or(path);
        if !rules.allowed_types.iter().any(|t| has_type(name, t)) {
            let detail = if rules.allowed_types.iter().all(|t| t == NO_TYPE_ALLOWED) {
                format!(
                    "{path}: the datasets' output rules allow no file type in common, so no \
                     file may leave"
                )
            } else {
                let allowed: Vec<&str> = rules
                    .allowed_types
                    .iter()
                    .map(String::as_str)
                    .filter(|t| *t != NO_TYPE_ALLOWED)
                    .collect();
                format!("{path} is not of an allowed type ({})", allowed.join(", "))
            };
            out.push(Breach {
                rule: RULE_ALLOWED_TYPES.into(),
                detail,
            });
        }
    }
    for f in &rules.forbidden {
        if contains_ignore_ascii_case(content, f.as_bytes()) {
            out.push(Breach {
                rule: RULE_FORBIDDEN.into(),
                detail: format!("{path} contains \"{f}\""),
            });
        }
    }
    out
}

/// The rules of several datasets merged strictest-wins: the smallest `max_bytes`, the
/// intersection of the non-empty `allowed_types` lists ([`NO_TYPE_ALLOWED`] when they have
/// nothing in common), the union of the `forbidden` texts (each once, ASCII case ignored).
/// No rules: the default (anything may leave).
pub fn merged_rules<'a>(rules: impl IntoIterator<Item = &'a OutputRules>) -> OutputRules {
    let mut out = OutputRules::default();
    let mut types: Option<Vec<String>> = None;
    for r in rules {
        out.max_bytes = match (out.max_bytes, r.max_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !r.allowed_types.is_empty() {
            types = Some(match types {
                None => {
                    let mut t = Vec::new();
                    for x in &r.allowed_types {
                        if !t.contains(x) {
                            t.push(x.clone());
                        }
                    }
                    t
                }
                Some(t) => t
                    .into_iter()
                    .filter(|x| r.allowed_types.contains(x))
                    .collect(),
            });
        }
        for f in &r.forbidden {
            if !out.forbidden.iter().any(|g| g.eq_ignore_ascii_case(f)) {
                out.forbidden.push(f.clone());
            }
        }
    }
    out.allowed_types = match types {
        None => Vec::new(),
        Some(t) if t.is_empty() => vec![NO_TYPE_ALLOWED.to_string()],
        Some(t) => t,
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> OutputRules {
        OutputRules {
            max_bytes: Some(100),
            allowed_types: vec!["csv".into(), "png".into(), "tar.gz".into()],
            forbidden: vec!["patient_id".into(), "身份证".into()],
        }
    }

    fn breaches(path: &str, size: u64, content: &[u8]) -> Vec<(String, String)> {
        check_file(&rules(), path, size, content)
            .into_iter()
            .map(|b| (b.rule, b.detail))
            .collect()
    }

    #[test]
    fn a_clean_file_passes_and_no_rules_pass_anything() {
        assert!(breaches("out/means.csv", 100, b"district,mean\nfutian,3.2\n").is_empty());
        assert!(breaches("out/plot.PNG", 1, b"\x89PNG").is_empty());
        assert!(breaches("out/all.tar.gz", 1, b"").is_empty());
        assert!(check_file(&OutputRules::default(), "x", u64::MAX, b"patient_id").is_empty());
    }

    #[test]
    fn max_bytes_names_the_file_and_the_limit() {
        assert_eq!(
            breaches("out/big.csv", 101, b""),
            vec![(
                "max_bytes".into(),
                "out/big.csv is 101 bytes, more than the 100 bytes allowed".into()
            )]
        );
        // The content counts if it is longer than the size given.
        assert_eq!(breaches("out/a.csv", 1, &[b'x'; 101]).len(), 1);
    }

    #[test]
    fn allowed_types_go_by_the_extension_of_the_file_name() {
        for path in [
            "out/a.txt",
            "out/csv",
            "out.csv/a",
            "out/.csv",
            "out/a.gz",
            "out/acsv",
        ] {
            let b = breaches(path, 1, b"");
            assert_eq!(b.len(), 1, "{path}");
            assert_eq!(b[0].0, "allowed_types");
            assert_eq!(
                b[0].1,
                format!("{path} is not of an allowed type (csv, png, tar.gz)")
            );
        }
        assert!(breaches("OUT/A.CSV", 1, b"").is_empty());
        assert!(breaches("a.Tar.Gz", 1, b"").is_empty());
        assert!(breaches("数据.csv", 1, b"").is_empty());
        assert_eq!(breaches("数据.说csv", 1, b"").len(), 1);
    }

    #[test]
    fn forbidden_text_is_found_whatever_its_case() {
        assert_eq!(
            breaches("out/a.csv", 30, b"district,Patient_ID\n"),
            vec![(
                "forbidden".into(),
                "out/a.csv contains \"patient_id\"".into()
            )]
        );
        assert_eq!(breaches("out/a.csv", 30, b"PATIENT_ID").len(), 1);
        assert_eq!(breaches("out/a.csv", 30, b"patient_i").len(), 0);
        assert_eq!(
            breaches("out/a.csv", 30, "姓名,身份证\n".as_bytes()).len(),
            1
        );
        // Every rule broken is named, each text once.
        let all = breaches("out/a.txt", 500, "patient_id 身份证 patient_id".as_bytes());
        let names: Vec<&str> = all.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            names,
            ["max_bytes", "allowed_types", "forbidden", "forbidden"]
        );
    }

    #[test]
    fn merging_keeps_the_strictest_of_each_rule() {
        let a = OutputRules {
            max_bytes: Some(100),
            allowed_types: vec!["csv".into(), "png".into()],
            forbidden: vec!["patient_id".into()],
        };
        let b = OutputRules {
            max_bytes: Some(50),
            allowed_types: vec!["png".into(), "json".into()],
            forbidden: vec!["PATIENT_ID".into(), "name".into()],
        };
        let open = OutputRules::default();
        let m = merged_rules([&a, &open, &b]);
        assert_eq!(m.max_bytes, Some(50));
        assert_eq!(m.allowed_types, vec!["png".to_string()]);
        assert_eq!(
            m.forbidden,
            vec!["patient_id".to_string(), "name".to_string()]
        );
        assert_eq!(merged_rules([&open, &a]), a);
        assert_eq!(merged_rules([]), OutputRules::default());
        assert_eq!(merged_rules([&open]).max_bytes, None);

        // Nothing in common: nothing may leave, not anything.
        let c = OutputRules {
            allowed_types: vec!["json".into()],
            ..OutputRules::default()
        };
        let none = merged_rules([&a, &c]);
        assert_eq!(none.allowed_types, vec![NO_TYPE_ALLOWED.to_string()]);
        let b = check_file(&none, "out/a.csv", 1, b"");
        assert_eq!(b.len(), 1);
        assert!(
            b[0].detail.contains("no file type in common"),
            "{}",
            b[0].detail
        );
        assert_eq!(merged_rules([&none, &a]).allowed_types, none.allowed_types);
        assert!(!check_file(&none, "out/x./none", 1, b"").is_empty());
    }
}
