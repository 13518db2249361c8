//! Passwords never reach the output.

use crate::fixture::seed;
use crate::harness::{TestDb, datsync};

const PASSWORD: &str = "s3cr3t-pw-77";

#[test]
fn a_password_never_appears_in_any_output() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    seed(&db, &ck);
    // Trust authentication ignores the password, so every command succeeds with it.
    let url = format!(
        "postgresql://root:{PASSWORD}@127.0.0.1:5432/{}?sslmode=disable",
        db.name
    );
    let ck_arg = ck.to_str().unwrap();
    let bad = format!(
        "postgresql://root:{PASSWORD}@127.0.0.1:1/{}?sslmode=disable",
        db.name
    );
    let runs: Vec<(Vec<&str>, i32)> = vec![
        (vec!["init-db", "--database-url", &url], 0),
        (vec!["init-db", "--database-url", &url, "--json"], 0),
        (vec!["list", "--database-url", &url], 0),
        (vec!["list", "--database-url", &url, "--json"], 0),
        (
            vec!["status", "--database-url", &url, "--checkpoint-dir", ck_arg],
            0,
        ),
        (
            vec![
                "status",
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck_arg,
                "--json",
            ],
            0,
        ),
        (vec!["list", "--database-url", &bad], 1),
        (vec!["init-db", "--database-url", &bad, "--json"], 1),
        (
            vec![
                "status",
                "--database-url",
                "postgresql://root:s3cr3t-pw-77@h/d?sslmode=bogus",
            ],
            1,
        ),
    ];
    for (args, want) in runs {
        let (code, out, err) = datsync(cwd.path(), &args, &[]);
        assert_eq!(code, want, "{args:?}: {out}{err}");
        assert!(
            !out.contains(PASSWORD) && !err.contains(PASSWORD),
            "{args:?}: {out}{err}"
        );
    }
    let (code, out, err) = datsync(
        cwd.path(),
        &["list"],
        &[
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "1"),
            ("DB_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "{out}{err}"
    );
}
