//! Problems in a TOML document (config file or manifest) reported the way a
//! person fixes them: line and column, what is wrong, and a suggestion.

use std::fmt;

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// 1-based; 0 when the problem has no single place (e.g. a missing key).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

impl Problem {
    /// A problem at the key `path` (e.g. `["resource_limits", "fuel"]`), or
    /// unplaced when the key is absent. Parses `text`: to place many
    /// problems in one document, use a [`Locator`].
    pub fn at(text: &str, path: &[&str], message: impl Into<String>) -> Self {
        Locator::new(text).problem(path, message)
    }

    /// The parser's or deserializer's error, located, with a suggestion
    /// for a misspelt key or value.
    pub fn from_toml(text: &str, error: &toml::de::Error) -> Self {
        let (line, column) = error
            .span()
            .map_or((0, 0), |span| line_column(text, span.start));
        let mut message = error.message().trim().to_owned();
        if let Some(suggestion) = did_you_mean(&message) {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        }
        Self {
            line,
            column,
            message,
        }
    }
}

/// Places problems in one document: parsed once, with its line starts
/// indexed, so placing each problem costs a lookup, not a parse (a
/// manifest with thousands of unknown keys stays linear).
pub struct Locator<'a> {
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self {
            text,
            root: toml::de::DeTable::parse(text).ok(),
            line_starts,
        }
    }

    /// A problem at the key `path`, or unplaced when the key is absent.
    pub fn problem(&self, path: &[&str], message: impl Into<String>) -> Problem {
        let (line, column) = self.locate(path).unwrap_or((0, 0));
        Problem {
            line,
            column,
            message: message.into(),
        }
    }

    /// Line and column of the key at `path`, if the document has it.
    pub fn locate(&self, path: &[&str]) -> Option<(usize, usize)> {
        let mut table = self.root.as_ref()?.get_ref();
        let (last, parents) = path.split_last()?;
        let mut parents = parents.iter();
        while let Some(key) = parents.next() {
            match table.get(*key)?.get_ref() {
                toml::de::DeValue::Table(inner) => table = inner,
                // An array of tables (`[[mcp.servers]]`): the next part of
                // the path is the index.
                toml::de::DeValue::Array(items) => {
                    let index: usize = parents.next()?.parse().ok()?;
                    match items.get(index)?.get_ref() {
                        toml::de::DeValue::Table(inner) => table = inner,
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        let (key, _) = table.get_key_value(*last)?;
        Some(self.line_column(key.span().start))
    }

    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |l| l.chars().count())
            + 1;
        (line, column)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Line and column of the key at `path`, if the document has it.
pub fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    Locator::new(text).locate(path)
}

/// Lowercase words of letters and digits joined by `-`, e.g.
/// `data-processing`: capabilities, agent names and agent types.
pub fn is_kebab_case(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The known name most like `given`, when one is close enough to be a typo.
pub fn closest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(given, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown
/// variant"), the closest expected name, when one is close enough.
fn did_you_mean(message: &str) -> Option<String> {
    let unknown = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = unknown.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    expected
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(given, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\n[server]\n  listen = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(locate(text, &["server", "listen"]), Some((3, 3)));
        assert_eq!(locate(text, &["server", "nope"]), None);
        let locator = Locator::new(text);
        assert_eq!(locator.locate(&["a"]), Some((1, 1)));
        assert_eq!(locator.locate(&["server", "listen"]), Some((3, 3)));
        assert_eq!(locator.line_column(text.len()), (4, 1));
        let text = "[[s]]\nname = \"a\"\n\n[[s]]\nname = \"b\"\n";
        assert_eq!(locate(text, &["s", "1", "name"]), Some((5, 1)));
        assert_eq!(locate(text, &["s", "2", "name"]), None);
    }

    #[test]
    fn suggests_the_closest_expected_name() {
        let message =
            "unknown field `listen_adress`, expected one of `listen`, `data_dir`, `listen_address`";
        assert_eq!(did_you_mean(message).as_deref(), Some("listen_address"));
        assert_eq!(did_you_mean("unknown field `zzz`, expected `listen`"), None);
        assert_eq!(did_you_mean("invalid type"), None);
    }
}
