//! Logging setup: human-readable or JSON lines, filtered by `RUST_LOG`.
//!
//! Every command logs to stderr — except `serve`, whose lines the Azure Functions host reads
//! by stream: stdout as Information, stderr as Warning when the line holds "warn", else as
//! Error. So `serve` writes INFO and below to stdout and WARN and above to stderr.
//!
//! One event is one line in either format: in the text format every field value, the
//! message included, has its control characters (newlines, escape codes) and invisible
//! line or direction marks escaped, so a value from a request cannot forge a line or
//! repaint a terminal; the JSON format escapes them by construction.

use std::fmt;
use std::io::IsTerminal as _;

use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

use crate::cli::{GlobalArgs, LogFormat};

/// Where lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Everything on stderr.
    Stderr,
    /// INFO and below on stdout, WARN and above on stderr (`serve`).
    ByLevel,
}

/// Installs the global subscriber.
pub fn init(args: &GlobalArgs, streams: Streams) {
    let default = if args.quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match streams {
        Streams::Stderr => install(
            args.log_format,
            filter,
            || BarSafeStderr,
            std::io::stderr().is_terminal(),
        ),
        Streams::ByLevel => install(
            args.log_format,
            filter,
            std::io::stderr
                .with_max_level(Level::WARN)
                .and(std::io::stdout.with_min_level(Level::INFO)),
            std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
        ),
    }
}

fn install<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .fmt_fields(EscapedFields)
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Standard error, written with the progress bar hidden (see `cmd::progress`): a log line
/// never tears the bar.
struct BarSafeStderr;

impl std::io::Write for BarSafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::cmd::progress::suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        crate::cmd::progress::suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The text format's fields: `message name=value …`, every value escaped (see the module
/// docs); strings are quoted as `Debug` quotes them.
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", Escaped(value))
        } else {
            write!(
                self.writer,
                "{separator}{}={}",
                field.name(),
                Escaped(value)
            )
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, value);
        } else {
            self.field(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

/// A value with its control characters and invisible line and direction marks escaped
/// (`\n`, `\r`, `\t`, `\u{1b}`, …).
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for c in self.0.chars() {
            if needs_escape(c) {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Control characters, and the marks that move or reorder text without showing: line and
/// paragraph separators, bidirectional embeddings, overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the text format writes for events carrying hostile values.
    fn text_of(log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hostile_values_stay_on_their_line_in_the_text_format() {
        let forged = "f.dat\n2026-01-01T00:00:00Z ERROR database dropped\r\u{1b}[2J\u{202E}tad.exe";
        let out = text_of(|| {
            tracing::info!(blob = %forged, name = forged, debug = ?forged, "seen {forged}");
            tracing::warn!(n = 3, "plain");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for line in &lines {
            assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
            assert!(!line.contains('\u{202E}'), "{line:?}");
        }
        assert!(lines[0].contains("blob=f.dat\\n2026"), "{}", lines[0]);
        assert!(lines[0].contains("seen f.dat\\n"), "{}", lines[0]);
        assert!(lines[0].contains("\\u{1b}[2J"), "{}", lines[0]);
        assert!(
            lines[1].contains("WARN") && lines[1].contains("plain n=3"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let s = "Proses sukses: 1.000 baris, café ~|^ 日本";
        assert_eq!(Escaped(s).to_string(), s);
        assert_eq!(Escaped("a\tb\u{0}").to_string(), "a\\tb\\u{0}");
    }
}
