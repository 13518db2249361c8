//! Resuming at a recorded point ([`Decoder::resume_at`]): the batches after the point are
//! those of a decode from the start, line numbers and counts included, whatever the input's
//! shape and slicing; the text before the point is skipped, not decoded; a point that is not
//! the end of a record is refused.

use super::format::profile;
use super::*;

/// What a decode produced, batch by batch: the rows, the cut, and the resume point after it.
struct Decoded {
    batches: Vec<(Vec<Row>, BatchCut, Option<ResumePoint>)>,
    rows: u64,
    /// The decoder moved on to the jump's offset ([`Decoder::skip_to`]).
    jumped: bool,
}

/// Decodes `input` fed `step` bytes at a time, from the start or from `from`.
fn decode_from(
    profile: &Profile,
    input: &[u8],
    step: usize,
    options: ParseOptions,
    from: Option<ResumePoint>,
) -> Result<Decoded, ParseError> {
    decode_jumping(profile, input, step, options, from, None)
}

/// [`decode_from`], moving the resume on to `jump` ([`Decoder::skip_to`]) as soon as the
/// decoder takes it, and feeding the input from there on (as a source read again from that
/// byte): the bytes between are never fed.
fn decode_jumping(
    profile: &Profile,
    input: &[u8],
    step: usize,
    options: ParseOptions,
    from: Option<ResumePoint>,
    jump: Option<u64>,
) -> Result<Decoded, ParseError> {
    let mut decoder = Decoder::new(profile, options);
    if let Some(point) = from {
        decoder = decoder.resume_at(point);
    }
    let mut batches = Vec::new();
    let mut take = |decoder: &mut Decoder, batch: RecordBatch| {
        let cut = decoder.last_cut().unwrap();
        batches.push((rows(&[batch]), cut, decoder.resume_point()));
    };
    let step = step.min(input.len()).max(1);
    let mut jumped = false;
    let mut at = 0;
    'input: while at < input.len() {
        let piece = &input[at..input.len().min(at.saturating_add(step))];
        let mut pos = 0;
        while pos < piece.len() {
            pos += decoder.decode(&piece[pos..])?;
            if let Some(offset) = jump.filter(|_| !jumped)
                && decoder.skip_to(offset)
            {
                jumped = true;
                at = usize::try_from(offset).unwrap();
                continue 'input;
            }
            assert!(decoder.ready.len() <= 1, "more than one batch ready");
            while let Some(batch) = decoder.next_batch() {
                take(&mut decoder, batch);
            }
        }
        at += piece.len();
    }
    while let Some(batch) = decoder.flush()? {
        take(&mut decoder, batch);
    }
    Ok(Decoded {
        batches,
        rows: decoder.stats().rows,
        jumped,
    })
}

/// Checks that a decode resumed after each batch cut by rows or bytes, fed `step` bytes at a
/// time, yields the rest of the whole decode, also when moved on to an offset just before
/// the point; returns how many points were tried and how many of those moves were made.
fn check_every_point(
    profile: &Profile,
    input: &[u8],
    step: usize,
    options: ParseOptions,
) -> Result<(usize, usize), TestCaseError> {
    let Ok(whole) = decode_from(profile, input, usize::MAX, options, None) else {
        return Ok((0, 0));
    };
    let mut tried = 0;
    let mut jumps = 0;
    for (i, (_, cut, point)) in whole.batches.iter().enumerate() {
        // Every batch of plain text but the last can be resumed after (the last one too
        // when it was cut by rows or bytes at a line break). Gzip's last text comes out of
        // the inflater once the input ended, while the decoder flushes: no point there.
        let last = i + 1 == whole.batches.len();
        let gzip = input.starts_with(&[0x1f, 0x8b]);
        prop_assert!(point.is_some() || last || gzip, "batch {} cut {:?}", i, cut);
        prop_assert!(point.is_none() || *cut != BatchCut::End, "batch {}", i);
        let Some(point) = *point else { continue };
        let resumed = decode_from(profile, input, step, options, Some(point))
            .map_err(|e| TestCaseError::fail(format!("resumed after batch {i}: {e}")))?;
        prop_assert_eq!(resumed.rows, whole.rows, "rows after batch {}", i);
        prop_assert_eq!(
            resumed.batches.len(),
            whole.batches.len() - i - 1,
            "batches after batch {}",
            i
        );
        for (a, b) in resumed.batches.iter().zip(&whole.batches[i + 1..]) {
            prop_assert_eq!(&a.0, &b.0, "rows after batch {}", i);
            prop_assert_eq!(a.1, b.1);
            // The same next point (a point is only given while decoding, not while
            // flushing, and gzip text may come out later in one slicing than in another).
            if let (Some(a), Some(b)) = (a.2, b.2) {
                prop_assert_eq!(a, b, "the next resume point");
            }
        }
        // Moved on to an offset 1 to 3 bytes before the point and fed from there: the same.
        let offset = point.text_offset.saturating_sub(1 + i as u64 % 3);
        let jumped = decode_jumping(profile, input, step, options, Some(point), Some(offset))
            .map_err(|e| TestCaseError::fail(format!("moved on after batch {i}: {e}")))?;
        prop_assert!(!(gzip && jumped.jumped), "batch {}", i);
        jumps += usize::from(jumped.jumped);
        prop_assert_eq!(
            jumped.rows,
            resumed.rows,
            "rows, moved on after batch {}",
            i
        );
        prop_assert_eq!(
            &jumped.batches,
            &resumed.batches,
            "moved on after batch {}",
            i
        );
        tried += 1;
    }
    Ok((tried, jumps))
}

fn ztdwr_options(batch_rows: usize) -> ParseOptions {
    ParseOptions {
        batch_rows,
        ..ParseOptions::default()
    }
}

/// Every quirk of a ZTDWR file the decoder handles, in one file: a BOM and a quirky header,
/// CRLF and LF lines, blank lines (also right after a cut), both marker forms, trimming,
/// Latin-1 fields, ragged rows, a NUL byte, a line over the maximum, a last line without a
/// line break.
fn quirky_file() -> Vec<u8> {
    let mut text =
        b"\xEF\xBB\xBF^Surat Pengantar~|^nik supir~|^NO_POLISI~|^nama_supir~\r\n".to_vec();
    for i in 0..40u32 {
        let line = match i % 10 {
            0 => format!("^{i:03}~|^0012~|^B 1 X~|^ ANA ~\r\n"),
            1 => format!("{i:03}~|^0034~|^D 2 Y~|^BUDI\n"),
            2 => "\r\n".to_owned(),
            3 => format!("{i:03}~|^ragged~|^only three\n"),
            4 => format!("{i:03}~|^00\u{0}5~|^N U L~|^x\n"),
            5 => format!("{i:03}~|^{}~|^long~|^y\n", "z".repeat(300)),
            6 => format!("{i:03}~|^0056~|^E 5 F~|^  \n"),
            _ => format!("{i:03}~|^0078~|^F 6 G~|^SITI {i}\r\n"),
        };
        text.extend(line.as_bytes());
        if i % 10 == 8 {
            text.extend(b"LAT~|^0099~|^L 1 N~|^JOS\xC9\n");
        }
    }
    text.extend(b"999~|^0001~|^Z 9 Z~|^LAST");
    text
}

#[test]
fn every_point_of_a_quirky_file_resumes_to_the_same_batches() {
    let options = ParseOptions {
        max_line_bytes: 200,
        max_raw_bytes: 50,
        ..ztdwr_options(1)
    };
    let input = quirky_file();
    for gz in [false, true] {
        let input = if gz { gzip(&input) } else { input.clone() };
        let mut moves = 0;
        for batch_rows in [1, 2, 3, 7] {
            for &step in BUFFER_SIZES {
                let options = ParseOptions {
                    batch_rows,
                    ..options
                };
                let (tried, jumps) =
                    check_every_point(&Profile::ztdwr(), &input, step, options).unwrap();
                assert!(tried >= if gz { 1 } else { 40 / batch_rows }, "{tried}");
                moves += jumps;
            }
        }
        // Plain text moves on wherever the input is fed in pieces; gzip never does.
        assert_eq!(moves > 0, !gz, "{moves} moves, gzip {gz}");
    }
}

#[test]
fn the_text_before_the_point_is_skipped_not_decoded() {
    // Resumed after the first batch, a decoder never looks at the rows before the point:
    // garbling them (same length, no line breaks) changes nothing after it.
    let input = quirky_file();
    let options = ztdwr_options(10);
    let whole = decode_from(&Profile::ztdwr(), &input, usize::MAX, options, None).unwrap();
    let point = whole.batches[1].2.unwrap();
    let header_end = memchr::memchr(b'\n', &input).unwrap() + 1;
    let mut garbled = input.clone();
    for b in &mut garbled[header_end..usize::try_from(point.text_offset).unwrap() - 1] {
        if *b != b'\n' {
            *b = 0;
        }
    }
    for gz in [false, true] {
        let garbled = if gz { gzip(&garbled) } else { garbled.clone() };
        let resumed = decode_from(&Profile::ztdwr(), &garbled, 4096, options, Some(point)).unwrap();
        let want: Vec<_> = whole.batches[2..].iter().map(|b| &b.0).collect();
        let got: Vec<_> = resumed.batches.iter().map(|b| &b.0).collect();
        assert_eq!(got, want);
        assert_eq!(resumed.rows, whole.rows);
    }
}

/// A resume moved on to an offset before its point ([`Decoder::skip_to`], as the reader does
/// when the source's hash up to there was recorded) and fed the input from there gives the
/// batches of a decode from the start, line numbers and next resume points included; the
/// bytes before the offset are never fed. Gzip never moves: its text offsets are not byte
/// offsets.
#[test]
fn a_resume_moved_on_to_an_offset_before_its_point_gives_the_same_batches() {
    let input = quirky_file();
    let options = ztdwr_options(4);
    let whole = decode_from(&Profile::ztdwr(), &input, usize::MAX, options, None).unwrap();
    let mut jumps = 0;
    for (i, (_, _, point)) in whole.batches.iter().enumerate() {
        let Some(point) = *point else { continue };
        for back in [1, 2, 17, 64] {
            let Some(offset) = point.text_offset.checked_sub(back) else {
                continue;
            };
            for step in [1, 7, 64, 4096] {
                for gz in [false, true] {
                    let bytes = if gz { gzip(&input) } else { input.clone() };
                    let resumed = decode_jumping(
                        &Profile::ztdwr(),
                        &bytes,
                        step,
                        options,
                        Some(point),
                        Some(offset),
                    )
                    .unwrap();
                    let context = format!("batch {i}, offset {offset}, step {step}, gzip {gz}");
                    assert!(!(gz && resumed.jumped), "{context}");
                    jumps += usize::from(resumed.jumped);
                    assert_eq!(resumed.rows, whole.rows, "{context}");
                    if gz {
                        // Gzip's points depend on how its text comes out of the inflater.
                        let strip = |b: &[(Vec<Row>, BatchCut, Option<ResumePoint>)]| {
                            b.iter()
                                .map(|(r, c, _)| (r.clone(), *c))
                                .collect::<Vec<_>>()
                        };
                        let want = strip(&whole.batches[i + 1..]);
                        assert_eq!(strip(&resumed.batches), want, "{context}");
                    } else {
                        assert_eq!(resumed.batches, whole.batches[i + 1..], "{context}");
                    }
                }
            }
        }
    }
    assert!(jumps > 50, "{jumps} jumps");
}

/// [`Decoder::skip_to`] refuses to move where it cannot: without a resume, before the header
/// is read, at or past the point, before the text already consumed, and in gzip input.
#[test]
fn a_resume_does_not_move_where_it_cannot() {
    let input = quirky_file();
    let options = ztdwr_options(4);
    let whole = decode_from(&Profile::ztdwr(), &input, usize::MAX, options, None).unwrap();
    let point = whole.batches[3].2.unwrap();
    let header_end = memchr::memchr(b'\n', &input).unwrap();
    // No resume.
    let mut decoder = Decoder::new(&Profile::ztdwr(), options);
    decoder.decode(&input[..=header_end]).unwrap();
    assert!(!decoder.skip_to(point.text_offset - 1));
    // The header not read yet.
    let mut decoder = Decoder::new(&Profile::ztdwr(), options).resume_at(point);
    assert!(!decoder.skip_to(point.text_offset - 1));
    decoder.decode(&input[..header_end]).unwrap();
    assert!(
        !decoder.skip_to(point.text_offset - 1),
        "in the header line"
    );
    decoder.decode(&input[header_end..header_end + 10]).unwrap();
    let consumed = (header_end + 10) as u64;
    // At or past the point, before what was consumed.
    for offset in [point.text_offset, point.text_offset + 1, consumed - 1] {
        assert!(!decoder.skip_to(offset), "{offset}");
    }
    assert!(decoder.skip_to(consumed));
    // Gzip.
    let gz = gzip(&input);
    let mut decoder = Decoder::new(&Profile::ztdwr(), options).resume_at(point);
    decoder.decode(&gz).unwrap();
    assert!(!decoder.skip_to(point.text_offset - 1));
}

#[test]
fn a_point_that_is_not_the_end_of_a_record_is_refused() {
    let input = quirky_file();
    let options = ztdwr_options(10);
    let whole = decode_from(&Profile::ztdwr(), &input, usize::MAX, options, None).unwrap();
    let point = whole.batches[0].2.unwrap();
    let wrong = [
        // Inside a line.
        ResumePoint {
            text_offset: point.text_offset - 3,
            ..point
        },
        // Inside the header.
        ResumePoint {
            text_offset: 5,
            ..point
        },
        // Past the end of the file.
        ResumePoint {
            text_offset: input.len() as u64 + 10,
            ..point
        },
    ];
    for point in wrong {
        for &step in BUFFER_SIZES {
            let e = decode_from(&Profile::ztdwr(), &input, step, options, Some(point))
                .err()
                .unwrap();
            assert!(matches!(e, ParseError::ResumePoint { .. }), "{e}");
            assert!(e.to_string().contains("does not match the file"), "{e}");
        }
    }
}

#[test]
fn a_headerless_source_resumes_after_reading_its_first_record() {
    let p = profile("delimiter = \",\"\nheader = false\ncomment = \"#\"\n");
    let mut input = b"# a comment\n".to_vec();
    for i in 0..30 {
        input.extend(format!("{i},name {i},note\n").as_bytes());
    }
    let mut moves = 0;
    for batch_rows in [1, 4] {
        for &step in BUFFER_SIZES {
            let (tried, jumps) =
                check_every_point(&p, &input, step, ztdwr_options(batch_rows)).unwrap();
            assert!(tried >= 30 / batch_rows - 1, "{tried}");
            moves += jumps;
        }
    }
    assert!(
        moves > 0,
        "a headerless source moves on after its first record"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(128), ..ProptestConfig::default() })]

    /// The tricky alphabet of the ZTDWR tests: every resume point gives the rest.
    #[test]
    fn ztdwr_text_resumes_at_every_point(
        body in proptest::collection::vec(prop::sample::select(vec![b'~', b'|', b'^', b'\n', b'\r', b'"', b' ', b'a', b'0', 0xC3, 0xA9, 0xE9, 0]), 0..300),
        step in 1usize..40,
        batch_rows in 1usize..4,
        gz in any::<bool>(),
    ) {
        let mut input = format!("{HEADER}\r\n").into_bytes();
        input.extend(&body);
        input.extend(b"\n1~|^2~|^3~|^4\n");
        let input = if gz { gzip(&input) } else { input };
        let options = ParseOptions { max_line_bytes: 40, max_raw_bytes: 10, batch_bytes: 300, ..ztdwr_options(batch_rows) };
        check_every_point(&Profile::ztdwr(), &input, step, options)?;
    }

    /// Quotes, escapes, comments and records over several lines or over the maximum, with
    /// and without a header: every resume point gives the rest.
    #[test]
    fn quoted_text_resumes_at_every_point(
        body in proptest::collection::vec(prop::sample::select(vec![b'"', b',', b'\n', b'\r', b'\\', b'#', b' ', b'a', b'1', 0xE9]), 0..300),
        step in 1usize..40,
        batch_rows in 1usize..4,
        quote in any::<bool>(),
        escape in any::<bool>(),
        header in any::<bool>(),
        gz in any::<bool>(),
    ) {
        let mut format = String::from("delimiter = \",\"\ncomment = \"#\"\n");
        if quote { format.push_str("quote = '\"'\n"); }
        if escape { format.push_str("escape = \"backslash\"\n"); }
        if !header { format.push_str("header = false\n"); }
        let p = profile(&format);
        let mut input = if header { b"id,name,note\n".to_vec() } else { Vec::new() };
        input.extend(&body);
        let input = if gz { gzip(&input) } else { input };
        let options = ParseOptions { batch_rows, max_line_bytes: 64, max_raw_bytes: 16, batch_bytes: 200, ..ParseOptions::default() };
        check_every_point(&p, &input, step, options)?;
    }
}
