//! A job's outputs: the patterns a spec declares (`outputs = ["out/**/*.csv"]`), checked at
//! submit so that a bad one never reaches a site, and the matcher the site selects files with.
//!
//! A pattern is relative to the attempt folder; `*` and `?` stay within one folder, `**` spans
//! folders, `[abc]` and `{a,b}` as in shells. Paths are matched as `/`-separated relative paths.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::SpecError;
use super::input::RESERVED_FILE_PREFIX;

/// The most patterns a spec may declare.
pub const MAX_OUTPUT_PATTERNS: usize = 32;
/// The longest pattern, in bytes.
pub const MAX_OUTPUT_PATTERN_BYTES: usize = 256;

/// Checks every pattern of `outputs`, naming the first bad one as `outputs[i]`.
pub fn check(outputs: &[String]) -> Result<(), SpecError> {
    if outputs.len() > MAX_OUTPUT_PATTERNS {
        return Err(SpecError::new(
            "outputs",
            format!("at most {MAX_OUTPUT_PATTERNS} patterns"),
        ));
    }
    for (i, p) in outputs.iter().enumerate() {
        glob(p).map_err(|m| SpecError::new(format!("outputs[{i}]"), m))?;
    }
    Ok(())
}

fn glob(p: &str) -> Result<Glob, String> {
    if p.is_empty() {
        return Err("an empty pattern matches nothing".into());
    }
    if p.len() > MAX_OUTPUT_PATTERN_BYTES {
        return Err(format!("longer than {MAX_OUTPUT_PATTERN_BYTES} bytes"));
    }
    if p.chars().any(char::is_control) {
        return Err("must not contain control characters (NUL, newline, ...)".into());
    }
    if p.starts_with('/') || p.contains('\\') {
        return Err(format!(
            "{p:?}: must be relative to the attempt folder, with '/' between folders"
        ));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!(
            "{p:?}: must not have '.', '..' or empty components (nothing outside the attempt \
             folder is collected)"
        ));
    }
    if p.starts_with(RESERVED_FILE_PREFIX) {
        return Err(format!(
            "{p:?}: names starting with {RESERVED_FILE_PREFIX} are the agent's own files"
        ));
    }
    GlobBuilder::new(p)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| format!("{p:?}: not a valid pattern: {}", e.kind()))
}

/// The files a job's patterns select.
#[derive(Clone, Debug)]
pub struct OutputMatcher {
    set: GlobSet,
}

impl OutputMatcher {
    /// The matcher of `outputs`, checked as at submit.
    pub fn new(outputs: &[String]) -> Result<OutputMatcher, SpecError> {
        check(outputs)?;
        let mut b = GlobSetBuilder::new();
        for p in outputs {
            // Checked just above.
            if let Ok(g) = glob(p) {
                b.add(g);
            }
        }
        let set = b
            .build()
            .map_err(|e| SpecError::new("outputs", e.to_string()))?;
        Ok(OutputMatcher { set })
    }

    /// The files under `folder` (relative to the attempt folder), at any depth.
    pub fn under(folder: &str) -> Result<OutputMatcher, SpecError> {
        OutputMatcher::new(&[format!("{}/**", globset::escape(folder))])
    }

    /// Whether `path` (relative to the attempt folder, `/`-separated) is an output.
    pub fn matches(&self, path: &str) -> bool {
        !path.starts_with(RESERVED_FILE_PREFIX) && self.set.is_match(path)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> OutputMatcher {
        OutputMatcher::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn stars_stay_in_their_folder_and_double_stars_span_folders() {
        let one = m(&["*.csv"]);
        assert!(one.matches("a.csv"));
        assert!(!one.matches("out/a.csv"));
        let deep = m(&["out/**/*.csv", "model.bin"]);
        assert!(deep.matches("out/a.csv"));
        assert!(deep.matches("out/x/y/a.csv"));
        assert!(deep.matches("model.bin"));
        assert!(!deep.matches("out/a.txt"));
        assert!(!deep.matches("other/model.bin"));
        assert!(m(&["**"]).matches("x/y"));
        assert!(
            !m(&["**"]).matches(".suanli-live/rec"),
            "the agent's own files"
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_their_index() {
        let bad = |p: &str| {
            check(&["ok/*".to_string(), p.to_string()])
                .unwrap_err()
                .to_string()
        };
        for p in ["/etc/*", "../x", "a/../b", "./a", "a//b", "", "a\\b", "x\0"] {
            assert!(bad(p).starts_with("outputs[1]: "), "{p:?}: {}", bad(p));
        }
        assert!(
            bad("[abc").contains("not a valid pattern"),
            "{}",
            bad("[abc")
        );
        assert!(bad(".suanli-live/*").contains("agent's own"));
        assert!(bad(&"a".repeat(300)).contains("longer than 256"));
        let many: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
        assert_eq!(
            check(&many).unwrap_err().to_string(),
            "outputs: at most 32 patterns"
        );
    }
}
