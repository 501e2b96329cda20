//! The one output layer of the client verbs: aligned tables, `--json`, text on stdout and notes on
//! stderr. Every verb prints through here, so that a reader that goes away (`suanli jobs | head`)
//! ends the verb quietly: a write to a closed pipe fails with [`Closed`], which exits 0 without a
//! message instead of panicking as `println!` does.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

use serde::Serialize;

/// `--json`, for verbs that print one view.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Format {
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

/// `--json` or `--csv`, for the money documents (the hub renders the CSV).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Export {
    /// Print as JSON
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print as CSV (one row per line)
    #[arg(long)]
    pub csv: bool,
}

impl Export {
    pub fn format(self) -> Format {
        Format { json: self.json }
    }
}

/// Prints `v` as pretty JSON with `--json`, else the text `human` makes of it.
pub fn show<T: Serialize>(
    f: Format,
    v: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match f.json {
        true => json(v),
        false => print(&human(v)),
    }
}

/// Pretty JSON and a newline.
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    print(&text)
}

/// Text to stdout as it is.
pub fn print(text: &str) -> anyhow::Result<()> {
    write_all(std::io::stdout().lock(), text)
}

/// One line to stdout.
pub fn line(text: impl Display) -> anyhow::Result<()> {
    print(&format!("{text}\n"))
}

/// Text to stderr as it is (a job's stderr in `logs`); a closed stderr is [`Closed`] too.
pub fn print_err(text: &str) -> anyhow::Result<()> {
    write_all(std::io::stderr().lock(), text)
}

/// A message for the person at the terminal, on stderr: warnings, progress, "shown once" notes.
/// It never fails: with stderr closed there is no one to tell.
pub fn note(text: impl Display) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The reader of stdout (or stderr) has gone; the verb stops and exits quietly.
#[derive(Debug)]
pub struct Closed;

impl Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output closed")
    }
}

impl std::error::Error for Closed {}

/// Whether `e` is a closed output: [`Closed`], or a write that failed with a broken pipe
/// anywhere in its cause chain (a writer outside this layer, `sim gen`'s).
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Closed>()
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// For a verb whose exit code says more than its output (`wait`): a closed stdout is no error.
pub fn ignore_closed(e: anyhow::Error) -> anyhow::Result<()> {
    match e.is::<Closed>() {
        true => Ok(()),
        false => Err(e),
    }
}

fn write_all(mut w: impl Write, text: &str) -> anyhow::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write the output")),
    }
}

// ---------------------------------------------------------------- text

/// A table whose columns are aligned when displayed: two spaces between columns, the last one not
/// padded, East Asian wide characters counted as two columns.
#[derive(Debug, Default)]
pub struct Table(Vec<Vec<String>>);

impl Table {
    /// A table with a header row of space-separated column names.
    pub fn new(header: &str) -> Table {
        Table(vec![
            header.split_whitespace().map(str::to_string).collect(),
        ])
    }

    /// A table of these rows only, e.g. key-value pairs.
    pub fn of(rows: impl IntoIterator<Item = Vec<String>>) -> Table {
        Table(rows.into_iter().collect())
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.0.push(row);
    }

    /// The table with every line indented by two spaces.
    pub fn indented(&self) -> String {
        indent(&self.to_string())
    }
}

impl Extend<Vec<String>> for Table {
    fn extend<I: IntoIterator<Item = Vec<String>>>(&mut self, rows: I) {
        self.0.extend(rows);
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ncols = self.0.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; ncols];
        for row in &self.0 {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        for row in &self.0 {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', widths[i] - width(cell) + 2));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Terminal width of a string: CJK and full-width characters take two columns.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F => 2,
            0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// Every line of `text` indented by two spaces.
pub fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A value, or `-` for none.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The items joined by `sep`, or `empty` when there are none.
pub fn joined<T: Display>(items: impl IntoIterator<Item = T>, sep: &str, empty: &str) -> String {
    let s = items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(sep);
    if s.is_empty() { empty.to_string() } else { s }
}

/// Builds a table row from anything displayable.
macro_rules! row {
    ($($cell:expr),* $(,)?) => { vec![$($cell.to_string()),*] };
}
pub(crate) use row;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new("ID NAME STATE");
        t.push(row![7, "train-llm", "running"]);
        t.push(row![42, "深圳", "queued"]);
        assert_eq!(
            t.to_string(),
            "ID  NAME       STATE\n\
             7   train-llm  running\n\
             42  深圳       queued\n"
        );
        assert_eq!(Table::of([row!["a", 1]]).indented(), "  a  1\n");
    }

    #[test]
    fn ragged_rows_and_empty_cells() {
        let t = Table::of([row!["a", "", "c"], row!["bbb"], row!["", "x", ""]]);
        assert_eq!(t.to_string(), "a       c\nbbb\n     x\n");
        assert_eq!(Table::default().to_string(), "");
    }

    #[test]
    fn small_formats() {
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(or_dash(None::<u32>), "-");
        assert_eq!(joined(["a", "b"], ", ", "none"), "a, b");
        assert_eq!(joined(Vec::<String>::new(), ", ", "none"), "none");
    }

    /// A reader that has gone is [`Closed`]; other write errors are not.
    #[test]
    fn closed_pipe_is_quiet() {
        struct Gone(ErrorKind);
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(self.0.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = write_all(Gone(ErrorKind::BrokenPipe), "x").unwrap_err();
        assert!(e.is::<Closed>());
        assert!(ignore_closed(e).is_ok());
        let e = write_all(Gone(ErrorKind::PermissionDenied), "x").unwrap_err();
        assert!(!e.is::<Closed>());
        assert!(ignore_closed(e).is_err());
        assert!(write_all(Vec::new(), "x").is_ok());
        let piped = anyhow::Error::new(std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(is_closed(&piped.context("cannot write the trace")));
        assert!(is_closed(&anyhow::Error::new(Closed)));
        assert!(!is_closed(&anyhow::anyhow!("output closed")));
    }
}
