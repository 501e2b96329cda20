//! A tiny column aligner for terminal tables.

/// Aligns rows into columns separated by two spaces; the last column is not padded.
/// East Asian wide characters count as two columns.
pub fn align(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; ncols];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - width(cell) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A header row from space-separated column names.
pub fn header(names: &str) -> Vec<String> {
    names.split_whitespace().map(str::to_string).collect()
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

/// Builds a row from anything displayable.
macro_rules! row {
    ($($cell:expr),* $(,)?) => { vec![$($cell.to_string()),*] };
}
pub(crate) use row;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let rows = vec![
            row!["ID", "NAME", "STATE"],
            row![7, "train-llm", "running"],
            row![42, "深圳", "queued"],
        ];
        assert_eq!(
            align(&rows),
            "ID  NAME       STATE\n\
             7   train-llm  running\n\
             42  深圳       queued\n"
        );
    }

    #[test]
    fn ragged_rows_and_empty_cells() {
        let rows = vec![row!["a", "", "c"], row!["bbb"], row!["", "x", ""]];
        assert_eq!(align(&rows), "a       c\nbbb\n     x\n");
        assert_eq!(align(&[]), "");
    }
}
