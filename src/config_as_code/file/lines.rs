//! Line numbers for the file's errors: toml's spans are byte offsets,
//! [`line_of`] turns one into a line, [`key_line`] finds where a key of a
//! table is set, and [`PolicyLines`] says which line a policy's
//! validation error (a message naming its field) is about.

use std::ops::Range;

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line where `key` is set inside the table at `span` (`key = ...` or
/// a `[...key]` header); `None` when the table's span does not reach it.
pub(super) fn key_line(text: &str, span: Range<usize>, key: &str) -> Option<usize> {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let mut offset = start;
    for l in text[start..end].split_inclusive('\n') {
        let t = l.trim_start();
        let assigned = t
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        let header = t.starts_with('[')
            && t.trim_end()
                .trim_end_matches(']')
                .ends_with(&format!(".{key}"));
        if assigned || header {
            return Some(line_of(text, offset));
        }
        offset += l.len();
    }
    None
}

/// Where a policy's parts are in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PolicyLines {
    /// The line errors about the policy as a whole name (its name's).
    pub policy: usize,
    pub name: usize,
    pub selector: usize,
    pub options: usize,
    /// Each source group's table.
    pub groups: Vec<usize>,
    /// Each schedule's table, its `cron_expr` and its `kind`, if set.
    pub schedules: Vec<(usize, usize, Option<usize>)>,
    /// Each health check's table.
    pub checks: Vec<usize>,
}

impl PolicyLines {
    /// The line a validation error is about, from the field its message
    /// starts with (`schedules[1].cron_expr: …`).
    pub(super) fn locate(&self, message: &str) -> usize {
        let field = message.split(':').next().unwrap_or_default();
        let index = |prefix: &str| -> Option<(usize, &str)> {
            let rest = field.strip_prefix(prefix)?;
            let (i, tail) = rest.split_once(']')?;
            Some((i.parse().ok()?, tail.trim_start_matches('.')))
        };
        if let Some((i, _)) = index("source_groups[") {
            return self.groups.get(i).copied().unwrap_or(self.policy);
        }
        if let Some((i, _)) = index("health_checks[") {
            return self.checks.get(i).copied().unwrap_or(self.policy);
        }
        if let Some((i, tail)) = index("schedules[") {
            return match self.schedules.get(i) {
                Some((_, cron, _)) if tail == "cron_expr" => *cron,
                Some((_, _, Some(kind))) if tail == "kind" => *kind,
                Some((at, _, _)) => *at,
                None => self.policy,
            };
        }
        match field {
            "name" => self.name,
            f if f.starts_with("selector") => self.selector,
            f if f.starts_with("options") => self.options,
            _ => self.policy,
        }
    }
}
