//! The VM owner changelog given to `fix_ip_history`: one change per line,
//! `<vmid>|<from_uuid>|<to_uuid>|<%Y-%m-%d %H:%M:%S.%f>` (UTC).
//!
//! `fix_ip_history` validates nothing: a blank or short line, an extra field or
//! a bad date ends in a Python traceback halfway through. This module checks
//! every line first, the way Python's `splitlines`, `split('|')` and
//! `strptime` would read it, and reports every bad line with its number.
//! Read-only.

use std::collections::BTreeSet;

/// One valid change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Line number (1-based).
    pub line: usize,
    /// The VM.
    pub vm: u64,
    /// Previous owner.
    pub from: String,
    /// New owner.
    pub to: String,
    /// The date as written; `sortable` orders them.
    pub date: String,
    sortable: Timestamp,
}

/// What a valid file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Number of changes.
    pub changes: usize,
    /// Number of distinct VMs.
    pub vms: usize,
    /// Earliest and latest date, as written.
    pub range: Option<(String, String)>,
}

/// A bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Line number (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads `digits` as Python's strptime would for a field of `min..=max` digits.
fn number(s: &str, at: &mut usize, min: usize, max: usize) -> Option<u32> {
    let rest = &s.as_bytes()[*at..];
    let len = rest
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len < min {
        return None;
    }
    let value = s[*at..*at + len].parse().ok()?;
    *at += len;
    Some(value)
}

fn literal(s: &str, at: &mut usize, c: u8) -> Option<()> {
    (s.as_bytes().get(*at) == Some(&c)).then(|| *at += 1)
}

/// Parses `%Y-%m-%d %H:%M:%S.%f` with Python's ranges; the fraction has 1–6 digits.
/// Year, month, day, hour, minute, second, microsecond: ordered as time is.
type Timestamp = (u32, u32, u32, u32, u32, u32, u32);

fn parse_date(s: &str) -> Result<Timestamp, String> {
    let bad =
        || format!("date '{s}' is not '%Y-%m-%d %H:%M:%S.%f' (e.g. 2016-03-01 12:30:00.000000)");
    let mut at = 0;
    let field = |at: &mut usize, min, max, sep: Option<u8>| -> Result<u32, String> {
        let v = number(s, at, min, max).ok_or_else(bad)?;
        if let Some(c) = sep {
            literal(s, at, c).ok_or_else(bad)?;
        }
        Ok(v)
    };
    let year = field(&mut at, 4, 4, Some(b'-'))?;
    let month = field(&mut at, 1, 2, Some(b'-'))?;
    let day = field(&mut at, 1, 2, Some(b' '))?;
    let hour = field(&mut at, 1, 2, Some(b':'))?;
    let minute = field(&mut at, 1, 2, Some(b':'))?;
    let second = field(&mut at, 1, 2, Some(b'.'))?;
    let fraction_start = at;
    let fraction = field(&mut at, 1, 6, None)?;
    let micro_digits = at - fraction_start;
    if at != s.len() {
        return Err(format!(
            "date '{s}' has unexpected text after the fraction of a second"
        ));
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("date '{s}': month {month} does not exist")),
    };
    if day == 0 || day > days {
        return Err(format!(
            "date '{s}': day {day} does not exist in month {month} of {year}"
        ));
    }
    if hour > 23 || minute > 59 || second > 61 {
        return Err(format!(
            "date '{s}': time {hour}:{minute}:{second} is out of range"
        ));
    }
    let micros = fraction * 10u32.pow(6 - micro_digits.min(6) as u32);
    Ok((year, month, day, hour, minute, second, micros))
}

fn parse_line(number: usize, line: &str) -> Result<Change, String> {
    if line.trim().is_empty() {
        return Err("blank line (fix_ip_history would crash on it)".into());
    }
    let fields: Vec<&str> = line.split('|').collect();
    if fields.len() != 4 {
        return Err(format!(
            "{} fields, expected 4: <vmid>|<from_uuid>|<to_uuid>|<date>",
            fields.len()
        ));
    }
    let vm = fields[0];
    if vm.is_empty() || !vm.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("VM id '{vm}' is not an integer"));
    }
    let vm: u64 = vm
        .parse()
        .map_err(|_| format!("VM id '{vm}' is too large"))?;
    for (what, uuid) in [("from", fields[1]), ("to", fields[2])] {
        if !is_uuid(uuid) {
            return Err(format!(
                "{what} user '{uuid}' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            ));
        }
    }
    if fields[1].eq_ignore_ascii_case(fields[2]) {
        return Err(format!("from and to are the same user '{}'", fields[1]));
    }
    let sortable = parse_date(fields[3])?;
    Ok(Change {
        line: number,
        vm,
        from: fields[1].to_string(),
        to: fields[2].to_string(),
        date: fields[3].to_string(),
        sortable,
    })
}

/// Checks a whole changelog: every change, or every bad line.
pub fn validate(text: &str) -> Result<Vec<Change>, Vec<BadLine>> {
    let mut changes = Vec::new();
    let mut bad = Vec::new();
    // Python's str.splitlines: \n, \r\n and \r end lines; no empty last line.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for (i, line) in normalized
        .strip_suffix('\n')
        .unwrap_or(&normalized)
        .split('\n')
        .enumerate()
    {
        if normalized.is_empty() {
            break;
        }
        match parse_line(i + 1, line) {
            Ok(change) => changes.push(change),
            Err(problem) => bad.push(BadLine {
                line: i + 1,
                problem,
            }),
        }
    }
    if bad.is_empty() {
        Ok(changes)
    } else {
        Err(bad)
    }
}

/// Summary of valid changes.
pub fn summarize(changes: &[Change]) -> Summary {
    let vms: BTreeSet<u64> = changes.iter().map(|c| c.vm).collect();
    let first = changes.iter().min_by_key(|c| c.sortable);
    let last = changes.iter().max_by_key(|c| c.sortable);
    Summary {
        changes: changes.len(),
        vms: vms.len(),
        range: first
            .zip(last)
            .map(|(a, b)| (a.date.clone(), b.date.clone())),
    }
}

/// `validate-changelog FILE`: the summary of a valid file, or a
/// [`crate::base::error::Fatal::BadInput`] listing every bad line as `FILE:LINE: problem`.
pub fn check_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("reading '{}'", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        crate::base::error::Fatal::BadInput(format!("{}:{line}: not UTF-8 text", path.display()))
    })?;
    match validate(&text) {
        Ok(changes) => {
            let s = summarize(&changes);
            let range = s.range.map_or_else(
                || "no dates".to_string(),
                |(a, b)| format!("from {a} to {b}"),
            );
            Ok(format!(
                "{}: valid: {} change(s) of {} VM(s), {range} (UTC)\n",
                path.display(),
                s.changes,
                s.vms
            ))
        }
        Err(bad) => {
            let lines: Vec<String> = bad
                .iter()
                .map(|b| format!("{}:{}: {}", path.display(), b.line, b.problem))
                .collect();
            Err(crate::base::error::Fatal::BadInput(format!(
                "{} bad line(s); fix_ip_history would stop with a traceback on them:\n{}",
                bad.len(),
                lines.join("\n")
            ))
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0f5c2b3e-8a1d-4c6e-9b7a-1d2e3f4a5b6c";
    const B: &str = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

    #[test]
    fn valid_file_with_crlf_and_summary() {
        let text = format!("12|{A}|{B}|2016-03-01 12:30:00.000000\r\n7|{B}|{A}|2015-12-31 23:59:59.5\r\n12|{B}|{A}|2016-04-01 00:00:00.123456\n");
        let changes = validate(&text).unwrap();
        assert_eq!(changes.len(), 3);
        let summary = summarize(&changes);
        assert_eq!(summary.vms, 2);
        assert_eq!(
            summary.range,
            Some((
                "2015-12-31 23:59:59.5".to_string(),
                "2016-04-01 00:00:00.123456".to_string()
            ))
        );
    }

    #[test]
    fn every_bad_line_reported_with_its_number() {
        let text = format!(
            "12|{A}|{B}|2016-03-01 12:30:00.000000\n\
             \n\
             x1|{A}|{B}|2016-03-01 12:30:00.0\n\
             3|{A}|not-a-uuid|2016-03-01 12:30:00.0\n\
             4|{A}|{A}|2016-03-01 12:30:00.0\n\
             5|{A}|{B}|2016-03-01 12:30:00\n\
             6|{A}|{B}|2016-02-30 12:30:00.0\n\
             7|{A}|{B}\n\
             8|{A}|{B}|2016-03-01 12:30:00.0|extra\n\
             9|{A}|{B}|2016-03-01 24:30:00.0\n\
             10|{A}|{B}|2016-03-01 12:30:00.1234567\n"
        );
        let bad = validate(&text).unwrap_err();
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let problems: Vec<&str> = bad.iter().map(|b| b.problem.as_str()).collect();
        assert!(problems[0].contains("blank line"));
        assert!(problems[1].contains("not an integer"));
        assert!(problems[2].contains("not a UUID"));
        assert!(problems[3].contains("same user"));
        assert!(problems[4].contains("is not '%Y-%m-%d %H:%M:%S.%f'"));
        assert!(problems[5].contains("day 30 does not exist"));
        assert!(problems[6].contains("3 fields"));
        assert!(problems[7].contains("5 fields"));
        assert!(problems[8].contains("out of range"));
        assert!(problems[9].contains("unexpected text"));
    }

    #[test]
    fn leap_days_and_empty_file() {
        assert!(parse_date("2016-02-29 00:00:00.0").is_ok());
        assert!(parse_date("2015-02-29 00:00:00.0").is_err());
        assert!(parse_date("1900-02-29 00:00:00.0").is_err());
        assert!(parse_date("2000-02-29 00:00:00.0").is_ok());
        assert_eq!(validate("").unwrap(), vec![]);
    }
}
