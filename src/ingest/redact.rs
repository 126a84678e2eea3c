//! Redaction of everything a rejection or quarantine reason may quote from a landing file.
//!
//! A reason names the file, row, column and rule; it may show a short excerpt of what was seen,
//! but never data. The rules, applied wherever text from a file goes into a message:
//!
//! - **Header names** are shown only when they look like header names: at most
//!   [`MAX_HEADER_NAMES`] of them, each at most [`MAX_NAME_CHARS`] characters, printable, and
//!   without a run of [`IDENTIFIER_DIGITS`] or more digits (spaces and dashes between digits do
//!   not break a run, so `943 476 5919` counts as one). Otherwise only their number is given.
//! - **Excerpts** of values and title text are cut to [`MAX_EXCERPT_CHARS`] characters, control
//!   characters escaped, and any such digit run replaced by `<digits withheld>`.
//! - **Names** of landing files are escaped (control characters as `\u{..}`) and bounded.
//! - **Reasons** as a whole pass through [`reason`] before they reach the log, the manifest, the
//!   run record or `rejected.json`: bounded to [`MAX_REASON_CHARS`], control characters escaped,
//!   digit runs withheld — a last net under the rules above.

/// Digits in a row (ignoring spaces and dashes between them) from which text could be an NHS
/// number or another identifier.
pub const IDENTIFIER_DIGITS: usize = 10;
/// Header names listed at most.
pub const MAX_HEADER_NAMES: usize = 40;
/// Characters of one header name shown at most.
pub const MAX_NAME_CHARS: usize = 64;
/// Characters of an excerpt.
pub const MAX_EXCERPT_CHARS: usize = 40;
/// Characters of a landing file name in a message.
pub const MAX_FILE_CHARS: usize = 160;
/// Characters of a whole reason.
pub const MAX_REASON_CHARS: usize = 1000;

const WITHHELD: &str = "<digits withheld>";

/// Byte ranges of runs of at least [`IDENTIFIER_DIGITS`] digits, spaces and dashes allowed
/// between digits.
fn identifier_runs(text: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let (mut start, mut last_digit_end, mut digits) = (None, 0, 0);
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() {
            start.get_or_insert(i);
            digits += 1;
            last_digit_end = i + 1;
        } else if start.is_some() && matches!(c, ' ' | '-' | '\u{a0}') {
            continue;
        } else {
            if let (Some(s), true) = (start, digits >= IDENTIFIER_DIGITS) {
                runs.push((s, last_digit_end));
            }
            (start, digits) = (None, 0);
        }
    }
    if let (Some(s), true) = (start, digits >= IDENTIFIER_DIGITS) {
        runs.push((s, last_digit_end));
    }
    runs
}

/// True if the text holds a run of digits that could be an identifier (an NHS number).
pub fn could_be_identifier(text: &str) -> bool {
    !identifier_runs(text).is_empty()
}

/// Escapes control characters and withholds identifier-like digit runs.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_REASON_CHARS * 2));
    let mut at = 0;
    for (s, e) in identifier_runs(text) {
        escape_into(&text[at..s], &mut out);
        out.push_str(WITHHELD);
        at = e;
    }
    escape_into(&text[at..], &mut out);
    out
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
}

/// The first `max` characters of `text`, with `…` when cut.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// A short, redacted excerpt of a value or a line, quoted.
pub fn excerpt(text: &str) -> String {
    // Cut first (a long input is never copied whole), with room for a digit run across the cut.
    let head = bounded(text, MAX_EXCERPT_CHARS + 2 * IDENTIFIER_DIGITS);
    let cut = head.chars().count() > MAX_EXCERPT_CHARS;
    let mut shown = bounded(&clean(head.trim_end_matches('…')), MAX_EXCERPT_CHARS);
    if cut && !shown.ends_with('…') {
        shown.push('…');
    }
    format!("'{shown}'")
}

/// A landing file name or path for a message: escaped and bounded.
pub fn name(path: &str) -> String {
    let mut out = String::new();
    escape_into(&bounded(path, MAX_FILE_CHARS), &mut out);
    out
}

/// True if a header cell looks like a column name (see the module documentation).
pub fn looks_like_header_name(name: &str) -> bool {
    name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control) && !could_be_identifier(name)
}

/// The header names for a message: the names as a list when every one looks like a header name
/// and there are not too many, otherwise just how many cells there were.
pub fn header_names(names: &[String]) -> String {
    if shown(names) {
        format!("{names:?}")
    } else {
        format!("{} cells, not shown: they do not look like column names (data in the header row?)", names.len())
    }
}

/// Names (of sheets, say) joined with `, ` under the same rule as [`header_names`].
pub fn names_joined(names: &[String]) -> String {
    if shown(names) {
        names.join(", ")
    } else {
        format!("{} names, not shown", names.len())
    }
}

fn shown(names: &[String]) -> bool {
    names.len() <= MAX_HEADER_NAMES && names.iter().all(|n| looks_like_header_name(n))
}

/// A whole reason, as it may be logged and stored: bounded, escaped, digit runs withheld.
pub fn reason(text: &str) -> String {
    let head = bounded(text, MAX_REASON_CHARS + 2 * IDENTIFIER_DIGITS);
    bounded(&clean(head.trim_end_matches('…')), MAX_REASON_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_are_withheld_however_spaced() {
        assert!(could_be_identifier("9434765919"));
        assert!(could_be_identifier("x 943 476 5919 y"));
        assert!(could_be_identifier("943-476-5919"));
        assert!(!could_be_identifier("2024-01-31"), "a date is 8 digits");
        assert!(!could_be_identifier("RAL_cancer_pathways_2024-01.csv"));
        assert_eq!(clean("a 9434765919,b"), "a <digits withheld>,b");
        assert_eq!(clean("nhs 943 476 5919 end"), "nhs <digits withheld> end");
        assert_eq!(clean("line\nbreak\u{0}"), "line\\u{a}break\\u{0}");
    }

    #[test]
    fn header_names_only_when_they_look_like_names() {
        let good: Vec<String> = ["Pathway ID", "NHS Number", "Referral Date"].map(String::from).to_vec();
        assert_eq!(header_names(&good), r#"["Pathway ID", "NHS Number", "Referral Date"]"#);
        let data: Vec<String> = ["P1", "9434765919", "31/01/2024"].map(String::from).to_vec();
        let shown = header_names(&data);
        assert!(shown.starts_with("3 cells, not shown") && !shown.contains("943"), "{shown}");
        let long = vec!["x".repeat(500)];
        assert!(!header_names(&long).contains("xxx"));
        let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        assert!(header_names(&many).starts_with("1000 cells"));
    }

    #[test]
    fn excerpts_reasons_and_names_are_bounded() {
        let long = format!("{}9434765919{}", "a".repeat(30), "b".repeat(10_000));
        let e = excerpt(&long);
        assert!(e.chars().count() <= MAX_EXCERPT_CHARS + 3 && !e.contains("943"), "{e}");
        assert_eq!(excerpt("short"), "'short'");
        let r = reason(&format!("rejected: {}", "9434765919,".repeat(100_000)));
        assert!(r.chars().count() <= MAX_REASON_CHARS + 1 && !r.contains("9434"), "{}", r.len());
        assert_eq!(name("a\nb.csv"), "a\\u{a}b.csv");
        assert!(name(&"n".repeat(300)).chars().count() <= MAX_FILE_CHARS + 1);
    }
}
