//! The source's header against the profile, once per sync and before any chunk is loaded
//! (`ztdwr.md` §2): columns the profile does not know are named — in one warning, the
//! summary, `sync_metadata` and `status` — and optional columns the header lacks are said;
//! the profile's `unknown_columns` and `missing_optional` decide whether either stops the
//! sync with BAD_INPUT.
//!
//! The facts are recorded in `sync_metadata` before the first chunk is converted, from a
//! first read of the source's opening bytes (up to its header line), so that a resume which
//! never reads the source again still knows them; a sync that has them recorded reads them
//! from there.

use super::halt::{BadInput, Halt};
use super::run::Run;
use crate::parse::{Decoder, Delimiter, Header, READ_BUFFER_BYTES};
use crate::profile::{MissingOptional, UnknownColumns};
use crate::source::SourceRef;
use crate::status::RecordedHeader;

/// What the header says about the profile's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderFacts {
    recorded: RecordedHeader,
    /// Optional source columns of the profile the header lacks (known only when the header
    /// was read in this run).
    missing_optional: Vec<String>,
}

impl Run<'_> {
    /// Checks the header (see the module docs) and keeps its unknown columns for the summary
    /// (also when the profile's policy stops the sync).
    pub(super) async fn check_header(&mut self) -> Result<(), Halt> {
        let p = self.pipeline;
        let (schema, sync_id) = (&p.profile.schema, &self.plan.sync_id);
        if let Err(reason) = crate::load::file_version(&p.profile, &self.plan.file_name) {
            tracing::warn!(%sync_id, source = %self.plan.source_path,
                "{reason}: its rows have no file version and count as older than any \
                 versioned row (version_from_name of profile `{}`)", p.profile.name);
        }
        if let Some(recorded) =
            crate::status::recorded_header(&self.client, schema, sync_id).await?
        {
            let facts = HeaderFacts {
                recorded,
                missing_optional: Vec::new(),
            };
            self.unknown_columns
                .clone_from(&facts.recorded.unknown_columns);
            return self.apply_policy(&facts);
        }
        let Some(source) = self.plan.source.clone() else {
            return Ok(());
        };
        let profile = p.profile.clone();
        let options = p.parse_options(self.cut().await);
        let header = tokio::task::spawn_blocking(move || read_header(&source, &profile, options))
            .await
            .ok()
            .flatten();
        // Unreadable or headless: the conversion says why, with the file and line.
        let Some(header) = header else {
            return Ok(());
        };
        let facts = facts_of(&header, &p.profile);
        crate::status::record_header(&self.client, schema, sync_id, &facts.recorded).await?;
        self.announce(&facts);
        self.unknown_columns
            .clone_from(&facts.recorded.unknown_columns);
        self.apply_policy(&facts)
    }

    /// One warning for unknown columns (unless the profile says `ignore`), one for missing
    /// optional ones.
    fn announce(&self, facts: &HeaderFacts) {
        let p = self.pipeline;
        let sync_id = &self.plan.sync_id;
        let unknown = &facts.recorded.unknown_columns;
        if !unknown.is_empty() && p.profile.unknown_columns != UnknownColumns::Ignore {
            tracing::warn!(%sync_id, source = %self.plan.source_path, columns = %unknown.join(","),
                "the file has columns profile `{}` does not know: they are not loaded \
                 (unknown_columns = \"{}\")", p.profile.name, p.profile.unknown_columns);
        }
        if !facts.missing_optional.is_empty() {
            tracing::warn!(%sync_id, source = %self.plan.source_path,
                columns = %facts.missing_optional.join(","),
                "the file lacks optional columns of profile `{}`: they load as NULL \
                 (missing_optional = \"{}\")", p.profile.name, p.profile.missing_optional);
        }
    }

    /// BAD_INPUT when the profile says `fail` to what the header holds.
    fn apply_policy(&self, facts: &HeaderFacts) -> Result<(), Halt> {
        let p = &self.pipeline.profile;
        let source_name = self.plan.source_path.clone();
        let unknown = &facts.recorded.unknown_columns;
        if p.unknown_columns == UnknownColumns::Fail && !unknown.is_empty() {
            return Err(BadInput::UnknownColumns {
                source_name,
                profile: p.name.clone(),
                columns: unknown.clone(),
            }
            .into());
        }
        if p.missing_optional == MissingOptional::Fail && !facts.missing_optional.is_empty() {
            return Err(BadInput::MissingOptional {
                source_name,
                profile: p.name.clone(),
                columns: facts.missing_optional.clone(),
            }
            .into());
        }
        Ok(())
    }
}

/// The facts of a header: its unknown columns, the optional columns it lacks, and what joins
/// the fields of its lines.
fn facts_of(header: &Header, profile: &crate::profile::Profile) -> HeaderFacts {
    let known = header
        .columns
        .iter()
        .filter(|c| c.known && !c.duplicate)
        .map(|c| c.name.as_str());
    let delimiter = if header.delimiter.has_markers() {
        Delimiter::TildePipeCaret
    } else {
        header.delimiter
    };
    let delimiter = delimiter.bytes();
    HeaderFacts {
        recorded: RecordedHeader {
            unknown_columns: header.unknown_columns(),
            delimiter: Some(String::from_utf8_lossy(delimiter).into_owned()),
        },
        missing_optional: profile.missing_optional(known),
    }
}

/// The header of a source, read from its opening bytes; `None` when it cannot be read (the
/// conversion reports why).
fn read_header(
    source: &SourceRef,
    profile: &crate::profile::Profile,
    options: crate::parse::ParseOptions,
) -> Option<Header> {
    use std::io::Read as _;
    let mut reader = source.reader().ok()?;
    let mut decoder = Decoder::new(profile, options);
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return decoder.flush().ok().and(decoder.header().cloned()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        let mut pos = 0;
        while pos < n {
            pos += decoder.decode(&buffer[pos..n]).ok()?;
            if let Some(header) = decoder.header() {
                return Some(header.clone());
            }
            while decoder.next_batch().is_some() {}
        }
    }
}
