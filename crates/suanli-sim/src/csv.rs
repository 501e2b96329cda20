//! A minimal CSV reader for the trace and topology files (no quoted commas; blank lines and
//! lines starting with `#` are skipped): columns found by header name, then rows, with errors
//! naming the file, line and column.

use crate::trace::InputError;

/// One CSV field with its 1-based column.
pub(crate) struct Field<'a> {
    pub text: &'a str,
    pub column: usize,
}

/// A CSV text with the columns of `names` located in its header.
pub(crate) struct Csv<'a> {
    file: &'a str,
    cols: Vec<usize>,
    names: &'a [&'a str],
    /// (line, text) of every data row.
    pub rows: Vec<(usize, &'a str)>,
}

impl<'a> Csv<'a> {
    pub fn new(file: &'a str, text: &'a str, names: &'a [&'a str]) -> Result<Csv<'a>, InputError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (hline, header) = lines
            .next()
            .ok_or_else(|| InputError::bad(file, 1, 1, "empty file: no header line"))?;
        let have: Vec<&str> = header
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        let mut cols = Vec::new();
        for name in names {
            let i = have.iter().position(|h| h == name).ok_or_else(|| {
                InputError::bad(
                    file,
                    hline,
                    1,
                    format!("header lacks column {name:?} (has {})", have.join(",")),
                )
            })?;
            cols.push(i);
        }
        Ok(Csv {
            file,
            cols,
            names,
            rows: lines.collect(),
        })
    }

    /// The wanted fields of a row, in the order of `names`.
    pub fn fields(&self, line: usize, row: &'a str) -> Result<Vec<Field<'a>>, InputError> {
        let mut all = Vec::new();
        let mut start = 0;
        for part in row.split(',') {
            all.push(Field {
                text: part.trim().trim_matches('"'),
                column: start + 1 + (part.len() - part.trim_start().len()),
            });
            start += part.len() + 1;
        }
        let need = self.cols.iter().max().map_or(0, |m| m + 1);
        if all.len() < need {
            return Err(InputError::bad(
                self.file,
                line,
                row.len() + 1,
                format!("expected at least {need} fields, found {}", all.len()),
            ));
        }
        Ok(self
            .cols
            .iter()
            .map(|&i| Field {
                text: all[i].text,
                column: all[i].column,
            })
            .collect())
    }

    /// A bad field `idx` (of `names`) of the row at `line`.
    pub fn err(&self, line: usize, f: &Field, idx: usize, what: &str) -> InputError {
        InputError::bad(
            self.file,
            line,
            f.column,
            format!("{}: {:?} {what}", self.names[idx], f.text),
        )
    }
}
