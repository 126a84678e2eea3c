//! `alliance shell`: an interactive SQL shell over a role's read-only [`AccessSession`].
//!
//! Statements end with `;` and may span lines; each goes through [`statement`], with the same
//! rules as `alliance query` (queries only, the role's tables only). Tab completes table and column names (and SQL
//! keywords); history is kept in `.local/shell_history`. Dot commands: `.tables`,
//! `.schema NAME`, `.format table|csv|json`, `.help`, `.quit`.

use super::query::{CsvCells, OutputFormat};
use super::session::AccessSession;
use crate::error::{Error, Result};
use datafusion::arrow::array::AsArray;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "AS",
    "DISTINCT",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "UNION ALL",
    "DESC",
    "ASC",
    "IS NULL",
    "IS NOT NULL",
    "BETWEEN",
    "IN",
    "LIKE",
];

/// Completes table names, column names and keywords.
pub struct SqlCompleter {
    words: Vec<String>,
}

impl SqlCompleter {
    /// Candidates for the word ending at `pos` in `line`: (start of the word, completions).
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let start = line[..pos].rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let word = line[start..pos].to_lowercase();
        if word.is_empty() {
            return (start, vec![]);
        }
        let mut matches: Vec<String> =
            self.words.iter().filter(|w| w.to_lowercase().starts_with(&word)).cloned().collect();
        matches.dedup();
        (start, matches)
    }
}

impl Completer for SqlCompleter {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.candidates(line, pos);
        Ok((start, words.into_iter().map(|w| Pair { display: w.clone(), replacement: w }).collect()))
    }
}

impl Hinter for SqlCompleter {
    type Hint = String;
}
impl Highlighter for SqlCompleter {}
impl Validator for SqlCompleter {}
impl Helper for SqlCompleter {}

/// Table and column names the session's role sees, sorted, plus keywords.
pub async fn vocabulary(session: &AccessSession) -> Result<Vec<String>> {
    let batches = session.run("SELECT DISTINCT table_name, column_name FROM information_schema.columns").await?;
    let mut words: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    for b in &batches {
        for c in 0..2 {
            let names = b.column(c).as_string::<i32>();
            words.extend(names.iter().flatten().map(str::to_string));
        }
    }
    words.sort();
    words.dedup();
    Ok(words)
}

/// Runs one statement of the shell (its text, with or without the closing `;`) and renders the
/// result within the session's limits; CSV cells are neutralised as in `alliance query`.
pub async fn statement(session: &AccessSession, text: &str, format: OutputFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    statement_to(session, text, format, &mut out).await?;
    Ok(out)
}

/// Runs one statement of the shell, streaming its result to `out` batch by batch.
pub async fn statement_to(
    session: &AccessSession,
    text: &str,
    format: OutputFormat,
    out: impl std::io::Write + Send,
) -> Result<()> {
    let sql = text.trim().trim_end_matches(';');
    let stream = session.stream(sql).await?;
    super::output::write_stream(stream, format, CsvCells::Safe, out, session.limits()).await?;
    Ok(())
}

/// Runs the shell until `.quit` or end of input.
pub async fn run_shell(session: AccessSession) -> Result<()> {
    let words = vocabulary(&session).await?;
    let mut editor: Editor<SqlCompleter, rustyline::history::FileHistory> =
        Editor::new().map_err(|e| Error::Query { reason: format!("cannot start the shell: {e}") })?;
    editor.set_helper(Some(SqlCompleter { words }));
    let history = std::path::Path::new(".local/shell_history");
    let _ = std::fs::create_dir_all(".local");
    let _ = editor.load_history(history);
    println!(
        "alliance shell ({} role, read-only): queries ending with ';'. .tables lists what you can read, .help for commands.",
        session.role()
    );
    let mut format = OutputFormat::Table;
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { "alliance> " } else { "      ... " };
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Query { reason: format!("reading input: {e}") }),
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('.') {
            let _ = editor.add_history_entry(trimmed);
            match dot_command(&session, trimmed, &mut format).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => eprintln!("{e}"),
            }
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(sql.trim());
        if let Err(e) = statement_to(&session, &sql, format, std::io::stdout()).await {
            eprintln!("{e}");
        }
    }
    let _ = editor.save_history(history);
    Ok(())
}

/// Handles a dot command (`.tables`, `.schema NAME`, `.format F`, `.quit`); returns true to quit.
pub async fn dot_command(session: &AccessSession, command: &str, format: &mut OutputFormat) -> Result<bool> {
    let mut parts = command.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(".quit" | ".exit"), _) => return Ok(true),
        (Some(".tables"), _) => {
            let sql = "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name";
            print!("{}", String::from_utf8_lossy(&statement(session, sql, OutputFormat::Table).await?));
        }
        (Some(".schema"), Some(table)) => {
            session.check_table(table)?;
            let sql = format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                table.replace('\'', "''")
            );
            print!("{}", String::from_utf8_lossy(&statement(session, &sql, OutputFormat::Table).await?));
        }
        (Some(".format"), Some(f)) => {
            *format = match f {
                "table" => OutputFormat::Table,
                "csv" => OutputFormat::Csv,
                "json" => OutputFormat::Json,
                other => return Err(Error::Query { reason: format!("unknown format '{other}' (table, csv, json)") }),
            };
        }
        _ => println!(".tables  .schema NAME  .format table|csv|json  .quit"),
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_the_word_under_the_cursor() {
        let c = SqlCompleter {
            words: vec!["SELECT".into(), "mart_backlog".into(), "mart_cwt_performance".into(), "month".into()],
        };
        let (start, words) = c.candidates("select * from mart_c", 20);
        assert_eq!((start, words), (14, vec!["mart_cwt_performance".to_string()]));
        assert_eq!(c.candidates("sel", 3).1, ["SELECT"]);
        assert_eq!(c.candidates("select mo", 9).1, ["month"]);
        assert!(c.candidates("select ", 7).1.is_empty());
    }
}
