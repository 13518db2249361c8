//! `datsync inspect`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use datsync::{
    DEFAULT_CONFIG_FILE, InspectReport, LocalSource, Profile, RawSettings, SourceRef, inspect,
    process_env,
};

use crate::cli::InspectArgs;

pub fn run(args: &InspectArgs, profile: &Profile) -> anyhow::Result<ExitCode> {
    let name = args.file.clone();
    let flags = RawSettings {
        max_line_bytes: args.max_line_bytes,
        max_header_columns: args.max_header_columns,
        ..RawSettings::default()
    };
    let file = RawSettings::from_file(std::path::Path::new(DEFAULT_CONFIG_FILE))?;
    let options = flags
        .or(RawSettings::from_env(&process_env())?)
        .or(file)
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
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &name, &report, profile)?;
    }
    Ok(ExitCode::SUCCESS)
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
    writeln!(
        out,
        "encoding     UTF-8{bom}{crlf}; {} fields in {} rows decoded as Latin-1",
        r.latin1_fields, r.latin1_rows
    )?;
    writeln!(out, "delimiter    {}", r.delimiter)?;
    let known = r.header.iter().filter(|c| c.known).count();
    writeln!(
        out,
        "header       {} columns, {known} known to profile `{}`",
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
