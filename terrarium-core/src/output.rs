//! How every tool prints: JSON when stdout is not a terminal, a table when
//! it is, `--format` to choose. Errors go to stderr (one JSON line in JSON
//! modes). A closed pipe (`trm list | head -1`) is an error like any other
//! here, returned to the caller; only `main` decides to end quietly, so
//! whatever cleanup the command owes still runs (ripgrep's habit).

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON document.
    Json,
    /// One JSON object per line (progress and items as they come).
    Jsonl,
    /// A table or readable text for people.
    Human,
}

/// The shared `--format` option; flatten it into every tool's top-level args.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutputArgs {
    /// Output format [default: human on a terminal, json otherwise]
    #[arg(
        long,
        value_enum,
        global = true,
        env = "TRM_FORMAT",
        hide_env_values = true
    )]
    pub format: Option<Format>,
}

impl OutputArgs {
    pub fn printer(&self) -> Printer {
        Printer {
            format: self.format.unwrap_or_else(|| {
                if std::io::stdout().is_terminal() {
                    Format::Human
                } else {
                    Format::Json
                }
            }),
        }
    }
}

/// Something with a human rendering besides its JSON one.
pub trait Human {
    fn human(&self) -> String;
}

/// A row of a human table.
pub trait Row {
    fn headers() -> &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
}

impl Printer {
    /// A command's one result (a `summary` line in JSON Lines).
    pub fn one<T: Serialize + Human>(&self, item: &T) -> Result<()> {
        let text = match self.format {
            Format::Human => item.human(),
            Format::Json => pretty(item),
            Format::Jsonl => line(Line::Summary, item),
        };
        emit(&text)
    }

    /// A list: one JSON array, a table, or one `item` line each.
    pub fn list<T: Serialize + Row>(&self, items: &[T]) -> Result<()> {
        let text = match self.format {
            Format::Human => table(T::headers(), items.iter().map(Row::cells).collect()),
            Format::Json => pretty(&items),
            Format::Jsonl => items
                .iter()
                .map(|i| line(Line::Item, i))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        emit(&text)
    }

    /// One event of a stream that runs until stopped (`watch`): JSON Lines
    /// in both JSON formats, since a stream has no end to close an array.
    pub fn event<T: Serialize + Human>(&self, event: &T) -> Result<()> {
        emit(&match self.format {
            Format::Human => event.human(),
            Format::Json | Format::Jsonl => line(Line::Event, event),
        })
    }

    /// A progress line: only in JSON Lines (a terminal gets a bar from
    /// the tool, one JSON document gets none).
    pub fn progress<T: Serialize>(&self, progress: &T) -> Result<()> {
        match self.format {
            Format::Jsonl => emit(&line(Line::Progress, progress)),
            _ => Ok(()),
        }
    }

    /// Print an error the way the format asks and return its exit code.
    pub fn error(&self, err: &anyhow::Error) -> i32 {
        let code = exit_code(err);
        let kind = err
            .chain()
            .find_map(|e| e.downcast_ref::<Error>())
            .map(Error::kind)
            .unwrap_or("failure");
        let text = match self.format {
            Format::Human => format!("error: {err:#}"),
            _ => error_line(kind, &format!("{err:#}"), code),
        };
        let _ = writeln!(std::io::stderr(), "{text}");
        code
    }
}

/// The one JSON line an error is on stderr:
/// `{"type":"error","kind":..,"message":..,"exit_code":..}`.
pub fn error_line(kind: &str, message: &str, exit_code: i32) -> String {
    #[derive(Serialize)]
    struct ErrorLine<'a> {
        kind: &'a str,
        message: &'a str,
        exit_code: i32,
    }
    line(
        Line::Error,
        &ErrorLine {
            kind,
            message,
            exit_code,
        },
    )
}

/// The exit code for an error: the first typed core error in its chain
/// decides; clap errors are usage; anything else is a plain failure.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for e in err.chain() {
        if let Some(core) = e.downcast_ref::<Error>() {
            return core.exit_code();
        }
        if e.downcast_ref::<clap::Error>().is_some() {
            return crate::error::exit::USAGE;
        }
    }
    crate::error::exit::FAILURE
}

/// What a JSON Lines line is, in its `type` field, so a reader of a
/// mixed stream can tell a result from an event or progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Item,
    Event,
    Progress,
    Summary,
    Error,
}

/// One compact JSON line with `type` first, then the value's own fields
/// in their order (a non-object becomes `{"type":..,"value":..}`).
/// Output types never have a `type` field of their own.
pub fn line<T: Serialize + ?Sized>(kind: Line, v: &T) -> String {
    let kind = compact(&kind);
    let body = compact(v);
    match body.strip_prefix('{') {
        Some("}") => format!("{{\"type\":{kind}}}"),
        Some(rest) => format!("{{\"type\":{kind},{rest}"),
        None => format!("{{\"type\":{kind},\"value\":{body}}}"),
    }
}

fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("output types serialize")
}

fn compact<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("output types serialize")
}

/// Write a line to stdout. A reader that went away is an error
/// ([`is_broken_pipe`]) for the caller to return: `main` ends quietly on
/// it, as a well-behaved filter does, after the command has cleaned up.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if text.is_empty() {
        Ok(())
    } else {
        writeln!(out, "{text}")
    }
    .and_then(|_| out.flush())
    .map_err(|e| Error::io("writing output", e))
}

/// The reader of our stdout went away (`| head -1`): not worth a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<Error>().is_some_and(Error::is_broken_pipe)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A plain aligned table; empty cells print as `-`.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| if c.is_empty() { "-".into() } else { c })
                .collect()
        })
        .collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_line_says_what_it_is_first() {
        #[derive(Serialize)]
        struct Row {
            name: &'static str,
            n: u32,
        }
        #[derive(Serialize)]
        struct Empty {}
        assert_eq!(
            line(Line::Item, &Row { name: "web", n: 2 }),
            r#"{"type":"item","name":"web","n":2}"#
        );
        assert_eq!(line(Line::Summary, &Empty {}), r#"{"type":"summary"}"#);
        assert_eq!(
            line(Line::Event, &vec![1, 2]),
            r#"{"type":"event","value":[1,2]}"#
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&line(Line::Progress, &Row { name: "{", n: 0 })).unwrap();
        assert_eq!(parsed["type"], "progress");
        assert_eq!(parsed["name"], "{");
    }

    #[test]
    fn table_aligns_and_marks_empty_cells() {
        let t = table(
            &["NAME", "IPV4"],
            vec![
                vec!["web".into(), "10.0.0.2".into()],
                vec!["database".into(), "".into()],
            ],
        );
        assert_eq!(t, "NAME      IPV4\nweb       10.0.0.2\ndatabase  -");
    }

    #[test]
    fn exit_code_comes_from_the_typed_error_in_the_chain() {
        let e = anyhow::Error::new(Error::LockBusy("x".into())).context("while doing y");
        assert_eq!(exit_code(&e), 75);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(Error::io("writing output", pipe)).context("listing");
        assert!(is_broken_pipe(&e));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!is_broken_pipe(&anyhow::Error::new(Error::io("x", other))));
        assert!(!is_broken_pipe(&anyhow::anyhow!(
            "broken pipe, in words only"
        )));
    }
}
