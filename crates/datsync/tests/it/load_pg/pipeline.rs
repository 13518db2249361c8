//! End to end: a generated file with duplicates, defects and ragged rows, decoded, validated,
//! transformed and loaded chunk by chunk; the table holds exactly the newest accepted row of
//! every key, with its values.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, TimestampMicrosecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use datsync::{
    ChunkId, Decoder, LINE_COLUMN, Loader, ParseError, ParseOptions, Profile, SampleOptions,
    SampleSize, decode_reader, init_db, ledger_totals, write_sample,
};

use super::db::with_db;
use super::docs::register;

/// What a key must hold: (source line, bbm_actual text, waktu_timbang_terima text).
type Expected = HashMap<String, (i64, Option<String>, Option<String>)>;

fn typed_chunks(profile: &Profile) -> Vec<RecordBatch> {
    let mut file = Vec::new();
    let options = SampleOptions {
        size: SampleSize::Rows(3_000),
        seed: 42,
        invalid_rate: 0.05,
        dup_rate: 0.15,
        ragged_rate: 0.02,
        ..SampleOptions::default()
    };
    write_sample(&mut file, &options).unwrap();
    let mut decoder = Decoder::new(
        profile,
        ParseOptions {
            batch_rows: 400,
            ..ParseOptions::default()
        },
    );
    let mut out = Vec::new();
    decode_reader(file.as_slice(), &mut decoder, |text| {
        let validated = datsync::validate(profile, &text).unwrap();
        out.push(
            datsync::transform(profile, &validated.accepted)
                .unwrap()
                .batch,
        );
        Ok::<(), ParseError>(())
    })
    .unwrap();
    out
}

/// The newest row of every key across the chunks, read straight from the typed batches.
fn expected(profile: &Profile, chunks: &[RecordBatch]) -> Expected {
    let mut want = Expected::new();
    for b in chunks {
        let lines = b
            .column_by_name(LINE_COLUMN)
            .unwrap()
            .as_primitive::<UInt64Type>();
        let keys = b
            .column_by_name(&profile.key[0])
            .unwrap()
            .as_string::<i32>();
        let bbm = b
            .column_by_name("bbm_actual")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        let ts = b
            .column_by_name("waktu_timbang_terima")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let line = lines.value(i).cast_signed();
            let entry = (
                line,
                bbm.is_valid(i).then(|| bbm.value_as_string(i)),
                ts.value_as_datetime(i)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            );
            let old = want
                .entry(keys.value(i).to_owned())
                .or_insert(entry.clone());
            if old.0 < line {
                *old = entry;
            }
        }
    }
    want
}

#[tokio::test]
async fn a_generated_file_loads_to_exactly_the_newest_rows() {
    with_db(|db| async move {
        let profile = Profile::ztdwr();
        let mut c = db.client().await;
        init_db(&mut c, &profile).await.unwrap();
        let chunks = typed_chunks(&profile);
        let want = expected(&profile, &chunks);
        let rows: usize = chunks.iter().map(RecordBatch::num_rows).sum();
        assert!(
            chunks.len() >= 7 && want.len() < rows,
            "duplicates across chunks expected"
        );

        let loader = Loader::new(&profile);
        let first = register(&c, 1, "ZTDWR_20250129.dat").await;
        let (mut ins, mut upd, mut skip, mut sup) = (0, 0, 0, 0);
        for (i, b) in chunks.iter().enumerate() {
            let r = loader
                .load_chunk(&mut c, &first, ChunkId(i as u32), "x", b)
                .await
                .unwrap();
            (ins, upd, skip, sup) = (
                ins + r.inserted,
                upd + r.updated,
                skip + r.skipped_older,
                sup + r.superseded,
            );
        }
        // An empty table: every distinct key inserted once, nothing updated; a key met again
        // in a later chunk is superseded (validate already reduced in-chunk duplicates).
        assert_eq!(ins as usize, want.len());
        assert_eq!((ins + upd + skip + sup) as usize, rows);
        assert_eq!((upd, skip), (0, 0));
        assert_eq!(sup as usize, rows - want.len());
        let totals = ledger_totals(&c, "public", &first.sync_id).await.unwrap();
        assert_eq!(
            (totals.rows as usize, totals.inserted, totals.updated),
            (rows, ins.cast_signed(), upd.cast_signed())
        );
        assert_eq!(totals.loaded() as usize, want.len());

        let got: Expected = c
            .query(
                "SELECT surat_pengantar_barang, source_line, bbm_actual::text,
                        waktu_timbang_terima::text FROM transport_documents",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        assert_eq!(got, want);

        // The same file again under a newer sync: every key updated once, nothing inserted;
        // chunks of the first sync loaded again are no-ops.
        let second = register(&c, 2, "ZTDWR_20250129.dat").await;
        let (mut ins2, mut upd2) = (0, 0);
        for (i, b) in chunks.iter().enumerate() {
            let r = loader
                .load_chunk(&mut c, &second, ChunkId(i as u32), "x", b)
                .await
                .unwrap();
            (ins2, upd2) = (ins2 + r.inserted, upd2 + r.updated);
        }
        assert_eq!((ins2, upd2 as usize), (0, want.len()));
        let again = loader
            .load_chunk(&mut c, &first, ChunkId(3), "x", &chunks[3])
            .await
            .unwrap();
        assert!(again.already_committed);
        let stale: i64 = c
            .query_one(
                "SELECT count(*) FROM transport_documents WHERE sync_seq <> $1",
                &[&second.sync_seq],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stale, 0);
    })
    .await;
}
