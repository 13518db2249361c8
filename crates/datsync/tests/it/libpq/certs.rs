//! Certificates the tests make: a CA, a server certificate for `localhost` only, a client
//! certificate for `certuser`, and a second CA that signed none of them.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Certificates and keys, as PEM text.
pub struct Certs {
    /// The CA that signed the server's and the client's certificates.
    pub ca: String,
    /// A CA that signed neither.
    pub other_ca: String,
    /// The server's certificate: `localhost` only.
    pub server: String,
    /// Its key.
    pub server_key: String,
    /// The client certificate of `certuser`.
    pub client: String,
    /// Its key.
    pub client_key: String,
    /// A self-signed server certificate for `localhost` (no CA), as `make-ssl-cert` makes.
    pub self_signed: String,
    /// Its key.
    pub self_signed_key: String,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    sans: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Certs {
    /// A fresh set.
    pub fn new() -> Self {
        let ca = new_ca("datsync test CA");
        let other = new_ca("datsync other CA");
        let (server, server_key) = leaf(
            &ca,
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(&ca, &[], "certuser", ExtendedKeyUsagePurpose::ClientAuth);
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let self_signed = params.self_signed(&key).unwrap().pem();
        Self {
            self_signed,
            self_signed_key: key.serialize_pem(),
            ca: ca.pem(),
            other_ca: other.pem(),
            server,
            server_key,
            client,
            client_key,
        }
    }
}
