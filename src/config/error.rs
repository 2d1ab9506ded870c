//! Configuration errors that point at the file, line and column of the bad value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line of the bad value (0 when the problem has no position, e.g. an I/O error).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What the value belongs to, e.g. `datacenter "eu-west"` or `[[services]] "www"`.
    pub item: String,
    /// The offending text as written in the file.
    pub value: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        write!(f, ": {}", self.item)?;
        if !self.value.is_empty() {
            write!(f, ": {}", self.value)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading a file or a directory of files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order they were found.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(crate) fn single(d: Diagnostic) -> Self {
        ConfigError {
            diagnostics: vec![d],
        }
    }

    /// An error without a position: a file that cannot be read, a directory without zones.
    pub fn io(file: &Path, item: &str, message: impl fmt::Display) -> Self {
        Self::single(Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            item: item.to_string(),
            value: String::new(),
            message: message.to_string(),
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The text of a configuration file, for turning byte spans into positions.
#[derive(Debug)]
pub struct Source<'a> {
    /// Where the text came from.
    pub file: &'a Path,
    /// The whole file.
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// Wraps a file's text.
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Source { file, text }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// The source text of a span, trimmed to one line.
    pub fn snippet(&self, span: &Range<usize>) -> String {
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let end = floor_char_boundary(self.text, span.end.min(self.text.len())).max(start);
        let s = &self.text[start..end];
        let s = s.lines().next().unwrap_or("").trim();
        if s.chars().count() > 80 {
            let cut: String = s.chars().take(77).collect();
            format!("{cut}...")
        } else {
            s.to_string()
        }
    }

    /// A diagnostic at a span.
    pub fn diag(&self, span: &Range<usize>, item: &str, message: impl fmt::Display) -> Diagnostic {
        let (line, col) = self.position(span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            item: item.to_string(),
            value: self.snippet(span),
            message: message.to_string(),
        }
    }

    /// The header of the table that encloses a byte offset, such as `[datacenters.eu-west]`,
    /// or `top level`: names the item for errors that serde reports with only a span.
    pub fn enclosing_table(&self, offset: usize) -> String {
        let before = &self.text[..floor_char_boundary(self.text, offset.min(self.text.len()))];
        for line in before.lines().rev() {
            let t = line.trim();
            if t.starts_with('[')
                && !t.starts_with("[ ")
                && let Some(end) = t.find(']')
            {
                let header = if t.starts_with("[[") {
                    t.find("]]").map_or(&t[..=end], |e| &t[..e + 2])
                } else {
                    &t[..=end]
                };
                // A line like `[1, 2]` inside an array is not a header; headers hold names.
                if header.chars().any(|c| c.is_ascii_alphabetic() || c == '"') {
                    return format!("table {header}");
                }
            }
        }
        "top level".to_string()
    }

    /// Converts a TOML parse or schema error (syntax, unknown key, wrong type).
    pub fn from_toml(&self, err: &toml::de::Error) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        let (line, col) = self.position(span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            item: self.enclosing_table(span.start),
            value: self.snippet(&span),
            message: err.message().trim().replace('\n', " "),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Collects diagnostics while a file is validated, so that one run reports every problem.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    pub(crate) src: &'a Source<'a>,
    pub(crate) found: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(src: &'a Source<'a>) -> Self {
        Collector {
            src,
            found: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, span: &Range<usize>, item: &str, message: impl fmt::Display) {
        let d = self.src.diag(span, item, message);
        self.found.push(d);
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.found.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                diagnostics: self.found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let src = Source::new(Path::new("f.toml"), text);
        assert_eq!(src.position(0), (1, 1));
        let off = text.find('"').expect("quote");
        assert_eq!(src.position(off), (2, 6));
    }

    #[test]
    fn enclosing_table_finds_the_nearest_header() {
        let text = "x = 1\n[datacenters.eu]\naddresses = [\"1\"]\n[[services]]\nname = \"www\"\n";
        let src = Source::new(Path::new("f.toml"), text);
        assert_eq!(src.enclosing_table(2), "top level");
        let off = text.find("addresses").expect("key");
        assert_eq!(src.enclosing_table(off), "table [datacenters.eu]");
        let off = text.find("name").expect("key");
        assert_eq!(src.enclosing_table(off), "table [[services]]");
    }
}
