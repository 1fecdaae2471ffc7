//! What a bad router configuration reports: the file, the line, the dotted
//! field at fault (`peer[2].bfd_profile`) and one sentence; and how lines are
//! found for fields that carry no span.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One fault in a configuration: where and what. Displays as
/// `router.toml:17: peer[2].bfd_profile: no BFD profile named "fast"; ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, if the configuration came from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the fault, when known.
    pub line: Option<usize>,
    /// The field at fault as a dotted path (`peer[2].bfd_profile`); empty
    /// when the fault is the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, &self.field, &self.message)
    }
}

/// Something accepted but worth saying (a setting ecmpd parses but does not
/// implement, a combination that is legal but likely a mistake). Displays
/// like [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, &self.field, &self.message)
    }
}

/// Every fault found in one configuration, in line order (never empty).
/// Displays one fault per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// Faults in line order; `errors` must not be empty.
    pub(crate) fn new(errors: Vec<ConfigError>) -> ConfigErrors {
        debug_assert!(!errors.is_empty());
        ConfigErrors(errors)
    }

    /// The first fault in line order.
    pub fn first(&self) -> &ConfigError {
        &self.0[0]
    }

    /// Every fault, in line order.
    pub fn as_slice(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fault on `field`, if there is one.
    pub fn on(&self, field: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.field == field)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn write_located(
    f: &mut fmt::Formatter<'_>,
    file: &Option<PathBuf>,
    line: Option<usize>,
    field: &str,
    message: &str,
) -> fmt::Result {
    if let Some(file) = file {
        write!(f, "{}", file.display())?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
    } else if let Some(line) = line {
        write!(f, "line {line}: ")?;
    }
    if !field.is_empty() {
        write!(f, "{field}: ")?;
    }
    write!(f, "{message}")
}

/// Where each table and key of a TOML text is written: the dotted path
/// (`peer[1].max_prefix.limit`, `bfd_profile.fast`) of every header and
/// `key =` line, so a fault found after deserialising, where no span is at
/// hand, still gets its line.
pub(crate) struct Outline {
    /// (dotted path, 1-based line), in file order.
    entries: Vec<(String, usize)>,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl Outline {
    pub(crate) fn new(src: &str) -> Outline {
        let mut entries = Vec::new();
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        // Array-of-tables path -> how many elements so far.
        let mut arrays: HashMap<String, usize> = HashMap::new();
        let mut table = String::new();
        for (i, raw) in src.lines().enumerate() {
            let l = raw.trim();
            if l.starts_with('#') || l.is_empty() {
                continue;
            }
            if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let parts = split_key(name);
                let parent = resolve(&arrays, &parts[..parts.len().saturating_sub(1)]);
                let last = parts.last().cloned().unwrap_or_default();
                let base = join(&parent, &last);
                let n = arrays.entry(base.clone()).or_insert(0);
                table = format!("{base}[{n}]");
                *n += 1;
                entries.push((table.clone(), i + 1));
            } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
                table = resolve(&arrays, &split_key(name));
                entries.push((table.clone(), i + 1));
            } else if let Some((k, _)) = l.split_once('=') {
                let k = k.trim();
                let bare = |c: char| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ')
                };
                if k.is_empty() || !k.chars().all(bare) {
                    continue;
                }
                let key = split_key(k).join(".");
                entries.push((join(&table, &key), i + 1));
            }
        }
        Outline {
            entries,
            line_starts,
        }
    }

    /// 1-based line of byte offset `at`.
    pub(crate) fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= at).max(1)
    }

    /// The line where `field` is written; failing that, where its nearest
    /// written parent is (`peer[0].hold_time` absent: the `[[peer]]` line).
    pub(crate) fn line_of_field(&self, field: &str) -> Option<usize> {
        let mut f = field;
        loop {
            if let Some((_, line)) = self.entries.iter().find(|(p, _)| p == f) {
                return Some(*line);
            }
            let cut = f.rfind(['.', '['])?;
            f = &f[..cut];
        }
    }

    /// The dotted path of the key or table written on (or nearest above) the
    /// line holding byte `at`.
    pub(crate) fn field_at(&self, at: usize) -> Option<String> {
        let line = self.line_of(at);
        self.entries
            .iter()
            .rev()
            .find(|(_, l)| *l <= line)
            .map(|(p, _)| p.clone())
    }
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else if key.is_empty() {
        table.to_string()
    } else {
        format!("{table}.{key}")
    }
}

/// Splits a dotted TOML key into its parts, unquoting quoted parts.
fn split_key(k: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in k.trim().chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut cur).trim().to_string()),
            (_, c) => cur.push(c),
        }
    }
    parts.push(cur.trim().to_string());
    parts
}

/// The path of a table header's parts, an array of tables standing for its
/// latest element (`[peer.max_prefix]` after two `[[peer]]` is
/// `peer[1].max_prefix`).
fn resolve(arrays: &HashMap<String, usize>, parts: &[String]) -> String {
    let mut path = String::new();
    for p in parts {
        path = join(&path, p);
        if let Some(&n) = arrays.get(&path) {
            path = format!("{path}[{}]", n.saturating_sub(1));
        }
    }
    path
}

/// Builds located errors and warnings for one text.
pub(crate) struct Locator<'a> {
    pub(crate) outline: Outline,
    pub(crate) path: Option<&'a Path>,
}

impl Locator<'_> {
    fn line(&self, span: Option<Range<usize>>, field: &str) -> Option<usize> {
        span.filter(|s| s.end > s.start)
            .map(|s| self.outline.line_of(s.start))
            .or_else(|| self.outline.line_of_field(field))
    }

    pub(crate) fn error(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let field = field.into();
        ConfigError {
            file: self.path.map(Path::to_path_buf),
            line: self.line(span, &field),
            field,
            message: message.into(),
        }
    }

    pub(crate) fn warning(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigWarning {
        let field = field.into();
        ConfigWarning {
            file: self.path.map(Path::to_path_buf),
            line: self.line(span, &field),
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_names_arrays_subtables_and_dotted_keys() {
        let src = "\
[router]
id = \"192.0.2.1\"

[[peer]]
address = \"192.0.2.2\"
[[peer]]
address = \"192.0.2.3\"
max_prefix.limit = 10
[peer.max_prefix]
warning_only = true
[bfd_profile.\"fast-1\"]
receive_interval = 10
[[policy.p.rule]]
action = \"deny\"
";
        let o = Outline::new(src);
        assert_eq!(o.line_of_field("router.id"), Some(2));
        assert_eq!(o.line_of_field("peer[1].address"), Some(7));
        assert_eq!(o.line_of_field("peer[1].max_prefix.limit"), Some(8));
        assert_eq!(o.line_of_field("peer[1].max_prefix.warning_only"), Some(10));
        assert_eq!(o.line_of_field("peer[0].hold_time"), Some(4));
        assert_eq!(
            o.line_of_field("bfd_profile.fast-1.receive_interval"),
            Some(12)
        );
        assert_eq!(o.line_of_field("policy.p.rule[0].action"), Some(14));
        assert_eq!(
            o.field_at(src.find("192.0.2.3").unwrap()).as_deref(),
            Some("peer[1].address")
        );
        assert_eq!(o.line_of(0), 1);
        assert_eq!(o.line_of(src.len()), 15);
    }
}
