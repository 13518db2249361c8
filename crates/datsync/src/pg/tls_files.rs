//! The files of a TLS connection, read as libpq's `initialize_SSL` reads them: root
//! certificates (a `verify-*` mode needs them), revocation lists, the client certificate and
//! its key (refused when the group or others may read it).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::tls::{RootCerts, Roots, SslMode, TlsOptions, TlsSetupError, setup_err};

pub(crate) fn load_roots(
    root: &RootCerts,
    mode: SslMode,
    implicit: bool,
) -> Result<Option<Roots>, TlsSetupError> {
    let verify = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let root = match root {
        RootCerts::Home(path) if implicit && !path.exists() => &RootCerts::System,
        RootCerts::Nowhere if implicit => &RootCerts::System,
        other => other,
    };
    let hint = "either provide the file, use the system's trusted roots with \
                sslrootcert=system, or change sslmode to disable server certificate verification";
    let der: Vec<CertificateDer<'static>> = match root {
        RootCerts::System => {
            // Missing or unreadable system certificates only narrow the store; the Mozilla
            // roots are always there.
            let mut store = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            return Ok(Some(Roots {
                store: Arc::new(store),
                der: Vec::new(),
                origin: "the system's trusted roots".into(),
            }));
        }
        RootCerts::Nowhere if verify => {
            return Err(setup_err(format!(
                "could not get home directory to locate root certificate file; {hint}"
            )));
        }
        RootCerts::Nowhere => return Ok(None),
        RootCerts::File(path) | RootCerts::Home(path) if !path.exists() => {
            if verify {
                return Err(setup_err(format!(
                    "root certificate file \"{}\" does not exist; {hint}",
                    path.display()
                )));
            }
            return Ok(None);
        }
        RootCerts::File(path) | RootCerts::Home(path) => CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                setup_err(format!(
                    "could not read root certificate file \"{}\": {e}",
                    path.display()
                ))
            })?,
    };
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(der.iter().cloned());
    if added == 0 {
        let path = match root {
            RootCerts::File(p) | RootCerts::Home(p) => p.display().to_string(),
            _ => String::new(),
        };
        return Err(setup_err(format!(
            "could not read root certificate file \"{path}\": no certificate in it"
        )));
    }
    let origin = match root {
        RootCerts::Home(p) => format!("the root certificate file \"{}\"", p.display()),
        RootCerts::File(p) => format!("sslrootcert \"{}\"", p.display()),
        _ => String::new(),
    };
    Ok(Some(Roots {
        store: Arc::new(store),
        der,
        origin,
    }))
}

pub(crate) fn load_crls(
    options: &TlsOptions,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsSetupError> {
    let mut files: Vec<PathBuf> = options
        .crl
        .iter()
        .filter(|p| p.is_file())
        .cloned()
        .collect();
    if let Some(dir) = &options.crl_dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut in_dir: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    let mut crls = Vec::new();
    for file in files {
        let read = CertificateRevocationListDer::pem_file_iter(&file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                setup_err(format!(
                    "could not read certificate revocation list \"{}\": {e}",
                    file.display()
                ))
            })?;
        crls.extend(read);
    }
    Ok(crls)
}

pub(crate) fn load_client_cert(
    options: &TlsOptions,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, TlsSetupError> {
    let Some(cert_path) = &options.cert else {
        return Ok(None);
    };
    match std::fs::metadata(cert_path) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(setup_err(format!(
                "could not open certificate file \"{}\": {e}",
                cert_path.display()
            )));
        }
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            setup_err(format!(
                "could not read certificate file \"{}\": {e}",
                cert_path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(setup_err(format!(
            "could not read certificate file \"{}\": no certificate in it",
            cert_path.display()
        )));
    }
    let Some(key_path) = &options.key else {
        return Err(setup_err(
            "certificate present, but no private key file (sslkey)",
        ));
    };
    let key = load_key(key_path, options.key_password)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        setup_err(format!(
            "certificate does not match private key file \"{}\": {e}",
            key_path.display()
        ))
    })?;
    Ok(Some(Arc::new(certified)))
}

/// Reads a private key as libpq does: a regular file others cannot read, PEM or DER.
pub(crate) fn load_key(
    path: &Path,
    password_given: bool,
) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            setup_err(format!(
                "certificate present, but not private key file \"{shown}\""
            ))
        } else {
            setup_err(format!("could not stat private key file \"{shown}\": {e}"))
        }
    })?;
    if !meta.is_file() {
        return Err(setup_err(format!(
            "private key file \"{shown}\" is not a regular file"
        )));
    }
    key_permissions(&meta, path)?;
    let bytes = std::fs::read(path)
        .map_err(|e| setup_err(format!("could not load private key file \"{shown}\": {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(setup_err(format!(
            "private key file \"{shown}\" is encrypted{}: datsync cannot decrypt keys; \
             store it decrypted (`openssl pkey -in KEY -out KEY.plain`) with mode 0600",
            if password_given {
                " (sslpassword given)"
            } else {
                ""
            }
        )));
    }
    if let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) {
        return Ok(key);
    }
    PrivateKeyDer::try_from(bytes).map_err(|e| {
        setup_err(format!(
            "could not load private key file \"{shown}\": neither a PEM nor a DER key ({e})"
        ))
    })
}

/// libpq refuses a key the group or others may read: mode 0600 or less, or 0640 or less
/// when root owns it.
#[cfg(unix)]
pub(crate) fn key_permissions(meta: &std::fs::Metadata, path: &Path) -> Result<(), TlsSetupError> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode();
    let loose = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if loose {
        return Err(setup_err(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn key_permissions(_: &std::fs::Metadata, _: &Path) -> Result<(), TlsSetupError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::tls::{RootCerts, SslMode};

    #[test]
    fn loose_key_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let pair = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, pair.serialize_pem()).unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o644, false), (0o660, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            // Files created by a test belong to whoever runs it: root may keep 0640.
            let root = nix::unistd::geteuid().is_root();
            let expected = ok || (root && mode == 0o640);
            assert_eq!(load_key(&key, false).is_ok(), expected, "{mode:o}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_key(&key, true).unwrap_err().to_string();
        assert!(e.contains("encrypted (sslpassword given)"), "{e}");
        std::fs::write(&key, pair.serialize_der()).unwrap();
        assert!(load_key(&key, false).is_ok(), "DER keys load too");
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let missing = RootCerts::File("/nonexistent/root.crt".into());
        let e = load_roots(&missing, SslMode::VerifyCa, false)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("root certificate file \"/nonexistent/root.crt\" does not exist"),
            "{e}"
        );
        assert!(
            load_roots(&missing, SslMode::Require, false)
                .unwrap()
                .is_none()
        );
        assert!(load_roots(&RootCerts::Nowhere, SslMode::VerifyFull, false).is_err());
        assert!(
            load_roots(&RootCerts::System, SslMode::VerifyFull, false)
                .unwrap()
                .is_some()
        );
        // datsync's default verify-full: the system's roots when no file is there, but a
        // file the settings name must exist.
        let home = RootCerts::Home("/nonexistent/.postgresql/root.crt".into());
        assert!(load_roots(&home, SslMode::VerifyFull, false).is_err());
        assert!(
            load_roots(&home, SslMode::VerifyFull, true)
                .unwrap()
                .is_some()
        );
        assert!(
            load_roots(&RootCerts::Nowhere, SslMode::VerifyFull, true)
                .unwrap()
                .is_some()
        );
        assert!(load_roots(&missing, SslMode::VerifyFull, true).is_err());
    }
}
