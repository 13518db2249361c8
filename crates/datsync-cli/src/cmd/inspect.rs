//! `datsync inspect`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use std::path::Path;

use datsync::{
    InspectReport, LocalSource, ParseError, Profile, RawSettings, SourceRef, inspect, process_env,
};

use crate::cli::InspectArgs;

/// Exit code of an inspection that could not read the file (or its profile).
const EXIT_UNREADABLE: u8 = 1;

/// `inspect`: the report, or with `--json` one JSON object on every outcome — the report, or
/// `{"file", "error", "line"}` when the file (or the profile) cannot be read.
pub fn run(args: &InspectArgs, profile_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let outcome = super::load_profile(profile_path).and_then(|profile| {
        let report = inspect_file(args, &profile)?;
        Ok((profile, report))
    });
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok((profile, report)) => {
            if args.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                print_text(&mut out, &args.file, &report, &profile)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if args.json => {
            let line = e
                .chain()
                .find_map(|c| c.downcast_ref::<ParseError>())
                .and_then(ParseError::line);
            let error = serde_json::json!({
                "file": args.file,
                "error": crate::one_line(&e),
                "line": line,
            });
            serde_json::to_writer_pretty(&mut out, &error)?;
            writeln!(out)?;
            Ok(ExitCode::from(EXIT_UNREADABLE))
        }
        Err(e) => Err(e),
    }
}

fn inspect_file(args: &InspectArgs, profile: &Profile) -> anyhow::Result<InspectReport> {
    let name = args.file.clone();
    let flags = RawSettings {
        max_line_bytes: args.max_line_bytes,
        max_header_columns: args.max_header_columns,
        ..RawSettings::default()
    };
    // The configuration file's settings are in process_env, below the environment.
    let options = flags
        .or(RawSettings::from_env(&process_env())?)
        .validate()?
        .parse_options();
    let report = if datsync::is_blob_url(&name) {
        // A blob is read by range on this thread; the runtime fetches the ranges.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let source = runtime.block_on(SourceRef::open(&name))?;
        inspect(source.reader()?, profile, options, args.rows)
    } else {
        let source = LocalSource::open(std::path::Path::new(&name))?;
        inspect(source.reader(), profile, options, args.rows)
    }
    .with_context(|| name.clone())?;
    Ok(report)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn print_text(
    out: &mut impl std::io::Write,
    name: &str,
    r: &InspectReport,
    profile: &Profile,
) -> std::io::Result<()> {
    let compression = if r.gzip { "gzip" } else { "none" };
    writeln!(out, "file         {name}")?;
    writeln!(
        out,
        "compression  {compression} ({} bytes read, {} bytes of text)",
        r.bytes_in, r.text_bytes
    )?;
    let bom = if r.bom { ", BOM" } else { "" };
    let crlf = if r.crlf_lines > 0 {
        ", CRLF line endings"
    } else {
        ""
    };
    if r.encoding == "utf-8" {
        writeln!(
            out,
            "encoding     UTF-8{bom}{crlf}; {} fields in {} rows decoded as Latin-1",
            r.latin1_fields, r.latin1_rows
        )?;
    } else {
        writeln!(out, "encoding     {}{bom}{crlf}", r.encoding)?;
    }
    let quoting = match (&r.quote, r.escape.as_str()) {
        (None, "none") => String::new(),
        (Some(q), "none") => format!(", quote {q}"),
        (None, e) => format!(", {e} escapes"),
        (Some(q), e) => format!(", quote {q}, {e} escapes"),
    };
    writeln!(out, "delimiter    {}{quoting}", r.delimiter)?;
    let known = r.header.iter().filter(|c| c.known).count();
    let header = if r.header_line {
        ""
    } else {
        " (no header line: named by the profile)"
    };
    writeln!(
        out,
        "header       {} columns, {known} known to profile `{}`{header}",
        r.columns.len(),
        profile.name
    )?;
    for c in r
        .header
        .iter()
        .filter(|c| c.canonical != c.name || !c.known)
    {
        writeln!(out, "               {:?} -> {}", c.raw, c.name)?;
    }
    writeln!(out, "unknown      {}", list(&r.unknown_columns))?;
    writeln!(out, "missing      required: {}", list(&r.missing_required))?;
    writeln!(out, "             optional: {}", list(&r.missing_optional))?;
    writeln!(
        out,
        "rows         {} data rows, {} ragged, {} with NUL bytes, {} too long, {} blank lines \
         skipped",
        r.rows, r.ragged_rows, r.nul_rows, r.long_lines, r.blank_lines
    )?;
    if r.skipped_lines + r.comment_lines + r.multiline_records + r.unterminated_quotes > 0 {
        writeln!(
            out,
            "             {} lines skipped, {} comment lines, {} records over several lines, \
             {} with an unterminated quote",
            r.skipped_lines, r.comment_lines, r.multiline_records, r.unterminated_quotes
        )?;
    }
    let key_columns: Vec<usize> = profile
        .required_sources()
        .filter_map(|s| r.columns.iter().position(|c| c == s))
        .collect();
    if !r.first_rows.is_empty() {
        let names: Vec<&str> = key_columns.iter().map(|&i| r.columns[i].as_str()).collect();
        writeln!(
            out,
            "first rows   (required columns: {})",
            names.join(" | ")
        )?;
        for row in &r.first_rows {
            let values: Vec<&str> = key_columns
                .iter()
                .map(|&i| {
                    row.values
                        .get(i)
                        .and_then(|v| v.as_deref())
                        .unwrap_or("NULL")
                })
                .collect();
            writeln!(out, "  line {:>6}  {}", row.line, values.join(" | "))?;
        }
    }
    for row in &r.first_ragged {
        let raw = row.values.first().and_then(|v| v.as_deref()).unwrap_or("");
        let raw: String = raw.chars().take(100).collect();
        writeln!(
            out,
            "  line {:>6}  {}: {raw}",
            row.line,
            row.error.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
