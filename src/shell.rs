//! `alliance shell`: an interactive SQL shell over the warehouse session of [`crate::query`].
//!
//! Statements end with `;` and may span lines. Tab completes table and column names (and SQL
//! keywords); history is kept in `.local/shell_history`. Dot commands: `.tables`,
//! `.schema NAME`, `.format table|csv|json`, `.help`, `.quit`.

use crate::error::{Error, Result};
use crate::query::{render, run, OutputFormat};
use datafusion::arrow::array::AsArray;
use datafusion::prelude::SessionContext;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::io::Write;

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

/// Table and column names known to the session, sorted, plus keywords.
pub async fn vocabulary(session: &SessionContext) -> Result<Vec<String>> {
    let batches = run(session, "SELECT DISTINCT table_name, column_name FROM information_schema.columns").await?;
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

/// Runs the shell until `.quit` or end of input.
pub async fn run_shell(session: SessionContext) -> Result<()> {
    let words = vocabulary(&session).await?;
    let mut editor: Editor<SqlCompleter, rustyline::history::FileHistory> =
        Editor::new().map_err(|e| Error::Query { reason: format!("cannot start the shell: {e}") })?;
    editor.set_helper(Some(SqlCompleter { words }));
    let history = std::path::Path::new(".local/shell_history");
    let _ = std::fs::create_dir_all(".local");
    let _ = editor.load_history(history);
    println!("alliance shell: SQL ending with ';' over marts, models, staging tables and runs. .help for commands.");
    let mut format = OutputFormat::Table;
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() { "alliance> " } else { "      ... " };
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Query { reason: format!("reading input: {e}") }),
        };
        let trimmed = line.trim();
        if statement.is_empty() && trimmed.starts_with('.') {
            let _ = editor.add_history_entry(trimmed);
            match dot_command(&session, trimmed, &mut format).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => eprintln!("{e}"),
            }
            continue;
        }
        statement.push_str(&line);
        statement.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut statement);
        let _ = editor.add_history_entry(sql.trim());
        match run(&session, sql.trim().trim_end_matches(';')).await.and_then(|b| render(&b, format)) {
            Ok(bytes) => {
                let _ = std::io::stdout().write_all(&bytes);
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    let _ = editor.save_history(history);
    Ok(())
}

/// Handles a dot command; returns true to quit.
async fn dot_command(session: &SessionContext, command: &str, format: &mut OutputFormat) -> Result<bool> {
    let mut parts = command.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(".quit" | ".exit"), _) => return Ok(true),
        (Some(".tables"), _) => {
            let sql = "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name";
            print!("{}", String::from_utf8_lossy(&render(&run(session, sql).await?, OutputFormat::Table)?));
        }
        (Some(".schema"), Some(table)) => {
            let sql = format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                table.replace('\'', "''")
            );
            print!("{}", String::from_utf8_lossy(&render(&run(session, &sql).await?, OutputFormat::Table)?));
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
