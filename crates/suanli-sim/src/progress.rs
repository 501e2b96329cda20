//! The progress bar on stderr (indicatif), hidden when stderr is not a terminal or when asked.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of one run: jobs ended out of all jobs, and the virtual day.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// No output (tests, `--quiet`, stderr not a terminal).
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// A bar on stderr labelled `label` (e.g. the policy), unless `quiet` or stderr is not a
    /// terminal.
    pub fn stderr(label: &str, jobs: u64, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(jobs), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} jobs, {msg}, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar: Some(bar) }
    }

    pub(crate) fn update(&self, jobs_ended: u64, now_ms: i64) {
        if let Some(b) = &self.bar {
            b.set_position(jobs_ended);
            b.set_message(format!("day {:.1}", now_ms as f64 / 86_400_000.0));
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
