//! One `#SBATCH` line as sbatch reads it: words (quotes group, a word starting with `#` starts a
//! comment), then options as getopt_long sees them (prefixes, combined short flags, values
//! attached or in the next word), each looked up in the directive table.

use super::table::{self, Arg, Directive, Lookup};

/// One option of a line.
#[derive(Debug)]
pub enum Item {
    /// A directive in the table, with its value, and how the script wrote it (`--err`, `-N`).
    Known {
        directive: &'static Directive,
        value: Option<String>,
        written: String,
    },
    /// An option the table does not know, as written.
    Unknown(String),
    /// A word that is no option (`hetjob`, a stray value).
    Word(String),
}

/// The words of a directive line: quotes group and are removed; an unquoted word that starts
/// with `#` ends the line.
pub fn split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '#') if !in_word => return Ok(words),
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The options of a line's words, in order.
pub fn options(words: &[String]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(body) = w.strip_prefix("--") {
            if body.is_empty() {
                items.push(Item::Word(w.clone()));
                continue;
            }
            let (name, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let directive = match table::long(name) {
                Ok(d) => d,
                Err(Lookup::Unknown) => {
                    items.push(Item::Unknown(format!("--{name}")));
                    continue;
                }
                Err(Lookup::Ambiguous(c)) => {
                    let c: Vec<String> = c.iter().map(|c| format!("--{c}")).collect();
                    return Err(format!("--{name} is ambiguous: it may be {}", c.join(", ")));
                }
            };
            let written = format!("--{name}");
            let value = match (directive.arg, attached) {
                (Arg::None, Some(_)) => {
                    return Err(format!("{written} takes no value"));
                }
                (Arg::None, None) => None,
                (Arg::Optional, v) => v,
                (Arg::Required, Some(v)) => Some(v),
                (Arg::Required, None) => Some(
                    it.next()
                        .ok_or_else(|| format!("{written} needs a value"))?
                        .clone(),
                ),
            };
            items.push(Item::Known {
                directive,
                value,
                written,
            });
        } else if let Some(body) = w.strip_prefix('-').filter(|b| !b.is_empty()) {
            // Combined short flags: `-kN2` is `-k -N 2`; the first that takes a value takes the
            // rest of the word, or the next word.
            for (i, c) in body.char_indices() {
                let Some(directive) = table::short(c) else {
                    items.push(Item::Unknown(format!("-{c}")));
                    break;
                };
                let written = format!("-{c}");
                if directive.arg != Arg::Required {
                    items.push(Item::Known {
                        directive,
                        value: None,
                        written,
                    });
                    continue;
                }
                let rest = &body[i + c.len_utf8()..];
                let value = if rest.is_empty() {
                    it.next()
                        .ok_or_else(|| format!("{written} needs a value"))?
                        .clone()
                } else if let Some(v) = rest.strip_prefix('=') {
                    return Err(format!(
                        "{written}={v}: sbatch reads the value as {rest:?}; write {written} {v}, {written}{v} or --{}={v}",
                        directive.long
                    ));
                } else {
                    rest.to_string()
                };
                items.push(Item::Known {
                    directive,
                    value: Some(value),
                    written,
                });
                break;
            }
        } else {
            items.push(Item::Word(w.clone()));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    /// `(written, value)` of each option, or the unknown/stray word.
    fn opts(s: &str) -> Vec<(String, Option<String>)> {
        options(&words(s))
            .unwrap()
            .into_iter()
            .map(|i| match i {
                Item::Known {
                    directive,
                    value,
                    written,
                } => (format!("{written}>{}", directive.long), value),
                Item::Unknown(w) => (format!("?{w}"), None),
                Item::Word(w) => (format!("'{w}"), None),
            })
            .collect()
    }

    fn o(w: &str, v: Option<&str>) -> (String, Option<String>) {
        (w.to_string(), v.map(str::to_string))
    }

    #[test]
    fn words_quotes_and_comments() {
        assert_eq!(words(r#"-J "a b" --x='c d'"#), ["-J", "a b", "--x=c d"]);
        assert_eq!(words("-N 2   # two nodes -N 9"), ["-N", "2"]);
        assert_eq!(words("--job-name=run#1 #c"), ["--job-name=run#1"]);
        assert_eq!(words("-J '' -N 1"), ["-J", "", "-N", "1"]);
        assert_eq!(words("#only a comment"), Vec::<String>::new());
        assert!(split("-J \"open").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn getopt_rules() {
        assert_eq!(
            opts("-N 2 -N3 --nodes=4 --nodes 5"),
            [
                o("-N>nodes", Some("2")),
                o("-N>nodes", Some("3")),
                o("--nodes>nodes", Some("4")),
                o("--nodes>nodes", Some("5"))
            ]
        );
        assert_eq!(
            opts("-kN2 -Qvt 10"),
            [
                o("-k>no-kill", None),
                o("-N>nodes", Some("2")),
                o("-Q>quiet", None),
                o("-v>verbose", None),
                o("-t>time", Some("10"))
            ]
        );
        assert_eq!(
            opts("--err=e.log --part gpu"),
            [
                o("--err>error", Some("e.log")),
                o("--part>partition", Some("gpu"))
            ]
        );
        // An optional value only ever comes attached.
        assert_eq!(
            opts("--exclusive user"),
            [o("--exclusive>exclusive", None), o("'user", None)]
        );
        assert_eq!(
            opts("--frob -é2 hetjob --"),
            [
                o("?--frob", None),
                o("?-é", None),
                o("'hetjob", None),
                o("'--", None)
            ]
        );
        let e = |s: &str| options(&words(s)).unwrap_err();
        assert!(e("--gpu=4").contains("ambiguous"), "{}", e("--gpu=4"));
        assert!(e("-N").contains("needs a value"));
        assert!(e("--time").contains("needs a value"));
        assert!(e("--hold=yes").contains("takes no value"));
        assert!(e("-N=2").contains("-N 2"), "{}", e("-N=2"));
    }
}
