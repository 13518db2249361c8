//! Values arrive exactly: decimals digit for digit, timestamps naive, every type.

use datsync::{Loader, init_db};

use super::db::with_db;
use super::docs::{Doc, batch, docs_profile, load, register};

/// (mantissa at scale 6, the text PostgreSQL must hold).
const DECIMALS: &[(i128, &str)] = &[
    (1_234_567_891_234, "1234567.891234"),
    (0, "0.000000"),
    (1, "0.000001"),
    (-1, "-0.000001"),
    (500_000_000, "500.000000"),
    (12_500_000, "12.500000"),
    (-1_234_560_000, "-1234.560000"),
    (100_000_000_000_000_000_000, "100000000000000.000000"),
    (
        i128::pow(10, 38) - 1,
        "99999999999999999999999999999999.999999",
    ),
    (
        1 - i128::pow(10, 38),
        "-99999999999999999999999999999999.999999",
    ),
    (
        1_000_000_000_000_000_000_000_000_000_000_000_001,
        "1000000000000000000000000000000.000001",
    ),
    (10_000_000_000, "10000.000000"),
    (123_456_789, "123.456789"),
];

#[tokio::test]
async fn decimals_round_trip_exactly() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = docs_profile();
        init_db(&mut c, &p).await.unwrap();
        let sync = register(&c, 1, "a.dat").await;
        let keys: Vec<&'static str> = (0..DECIMALS.len())
            .map(|i| &*Box::leak(format!("k{i:02}").into_boxed_str()))
            .collect();
        let rows: Vec<Doc> = DECIMALS
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(i, ((m, _), k))| Doc {
                line: i as u64 + 2,
                id: Some(k),
                amount: Some(*m),
                ..Doc::default()
            })
            .collect();
        load(&Loader::new(&p), &mut c, &sync, 0, &batch(&p, &rows)).await;
        let got: Vec<String> = c
            .query("SELECT amount::text FROM docs ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: Vec<&str> = DECIMALS.iter().map(|(_, t)| *t).collect();
        assert_eq!(got, want);
    })
    .await;
}

#[tokio::test]
async fn every_type_round_trips_and_timestamps_stay_naive() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = docs_profile();
        init_db(&mut c, &p).await.unwrap();
        let sync = register(&c, 1, "a.dat").await;
        // 2025-01-29 14:30:22.123456 as naive microseconds since 1970.
        let ts = 1_738_161_022_123_456;
        let full = Doc {
            line: 2,
            id: Some("0000012345"),
            amount: Some(45_500_000),
            qty: Some(-42),
            flag: Some(true),
            day: Some(20_117), // 2025-01-29
            at: Some((14 * 3600 + 30 * 60 + 22) * 1_000_000 + 5),
            ts: Some(ts),
            note: Some("NATANAEL \"quoted\" ~|^ é".into()),
        };
        let early = Doc {
            line: 3,
            id: Some("0000012346"),
            flag: Some(false),
            day: Some(-1),             // 1969-12-31, before both epochs
            ts: Some(-86_400_000_000), // 1969-12-31 00:00:00
            at: Some(0),
            ..Doc::default()
        };
        load(
            &Loader::new(&p),
            &mut c,
            &sync,
            0,
            &batch(&p, &[full, early]),
        )
        .await;
        c.batch_execute("SET TimeZone = 'Asia/Jakarta'")
            .await
            .unwrap();
        let rows = c
            .query(
                "SELECT id, amount::text, qty, flag, day::text, at::text, ts::text, note
                   FROM docs ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        let r = &rows[0];
        assert_eq!(r.get::<_, String>(0), "0000012345");
        assert_eq!(r.get::<_, String>(1), "45.500000");
        assert_eq!(r.get::<_, i64>(2), -42);
        assert!(r.get::<_, bool>(3));
        assert_eq!(r.get::<_, String>(4), "2025-01-29");
        assert_eq!(r.get::<_, String>(5), "14:30:22.000005");
        assert_eq!(r.get::<_, String>(6), "2025-01-29 14:30:22.123456");
        assert_eq!(r.get::<_, String>(7), "NATANAEL \"quoted\" ~|^ é");
        let r = &rows[1];
        assert_eq!(r.get::<_, Option<String>>(1), None);
        assert_eq!(r.get::<_, Option<i64>>(2), None);
        assert!(!r.get::<_, bool>(3));
        assert_eq!(r.get::<_, String>(4), "1969-12-31");
        assert_eq!(r.get::<_, String>(5), "00:00:00");
        assert_eq!(r.get::<_, String>(6), "1969-12-31 00:00:00");
        assert_eq!(r.get::<_, Option<String>>(7), None);
    })
    .await;
}

/// A value sent with datsync's own `numeric` binary encoding.
#[derive(Debug)]
struct Numeric(i128, u8);

impl tokio_postgres::types::ToSql for Numeric {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        datsync::put_numeric(out, self.0, self.1);
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::NUMERIC
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The decimal text of `mantissa × 10^-scale`, as PostgreSQL prints it.
fn decimal_text(mantissa: i128, scale: u8) -> String {
    let digits = mantissa.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if mantissa < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[tokio::test]
async fn random_decimals_of_every_scale_round_trip_through_the_server() {
    use rand::{Rng, SeedableRng};
    let c = super::db::server();
    let c = datsync::connect(&c).await.unwrap();
    let stmt = c.prepare("SELECT $1::numeric::text").await.unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for i in 0..3_000u32 {
        let scale = (i % 19) as u8;
        let digits = rng.random_range(0..=38u32);
        let bound = if digits == 38 {
            i128::MAX
        } else {
            10i128.pow(digits)
        };
        let mantissa = rng.random_range(-bound..=bound) % 10i128.pow(38);
        let got: String = c
            .query_one(&stmt, &[&Numeric(mantissa, scale)])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            got,
            decimal_text(mantissa, scale),
            "mantissa {mantissa} scale {scale}"
        );
    }
}
