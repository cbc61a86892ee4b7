//! HTTPS for the router: a local CA made once per `BERTH_HOME` (rcgen), and a certificate
//! per name, made when a client first asks for it (SNI) and kept in memory.
//!
//! The CA is name-constrained to `localhost` and the loopback addresses: once trusted, it
//! can vouch for `web.shop.localhost` and nothing on the internet, whoever gets its key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::error::RouterError;
use super::state::RouterPaths;
use crate::durable::write_atomic;

/// How long a name's certificate is valid: under the 398 days browsers accept.
const LEAF_VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);

/// The local CA: its certificate (what users trust) and its key.
pub struct Authority {
    pub certificate_pem: String,
    key: KeyPair,
}

impl Authority {
    /// The CA of this `BERTH_HOME`, made on first use. The key is written mode 0600
    /// before the certificate, so a certificate on disk always has its key.
    pub fn load_or_create(paths: &RouterPaths) -> Result<Self, RouterError> {
        let key_path = paths.ca_key();
        let certificate_path = paths.ca_certificate();
        if key_path.exists() && certificate_path.exists() {
            let key_pem = read_text(&key_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|error| RouterError::Certificate {
                what: format!("the CA key `{}` does not parse", key_path.display()),
                detail: error.to_string(),
            })?;
            let certificate_pem = read_text(&certificate_path)?;
            return Ok(Authority {
                certificate_pem,
                key,
            });
        }
        let key = KeyPair::generate().map_err(certificate_error("a key for the CA"))?;
        let certificate = ca_params(&key)
            .self_signed(&key)
            .map_err(certificate_error("the CA certificate"))?;
        crate::durable::create_private_dir(&paths.dir)?;
        write_atomic(&key_path, key.serialize_pem().as_bytes())?;
        write_atomic(&certificate_path, certificate.pem().as_bytes())?;
        Ok(Authority {
            certificate_pem: certificate.pem(),
            key,
        })
    }

    /// A certificate for `names` (DNS names or IP addresses; the first is its common
    /// name), signed by the CA.
    pub fn issue(&self, names: &[&str]) -> Result<CertifiedKey, RouterError> {
        let name = names.first().copied().unwrap_or("localhost");
        let key = KeyPair::generate().map_err(certificate_error("a key"))?;
        let mut params = CertificateParams::new(
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(certificate_error(&format!("a certificate for `{name}`")))?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + LEAF_VALIDITY;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::new(ca_params(&self.key), &self.key);
        let certificate = params
            .signed_by(&key, &issuer)
            .map_err(certificate_error(&format!("a certificate for `{name}`")))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(|error| {
            RouterError::Certificate {
                what: format!("the key of `{name}`"),
                detail: error.to_string(),
            }
        })?;
        Ok(CertifiedKey::new(
            vec![CertificateDer::from(certificate.der().to_vec())],
            signing,
        ))
    }
}

/// The CA's parameters, derived from its key alone: the certificate on disk and the
/// issuer of every name's certificate agree without parsing one back.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String = Sha256::digest(key.public_key_raw())[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("berth router local CA {id}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "berth (development only)");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".to_string()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(
                std::net::Ipv6Addr::LOCALHOST.octets(),
                [0xff; 16],
            )),
        ],
        excluded_subtrees: Vec::new(),
    });
    // Fixed dates: the same key gives the same issuer, whenever it is derived.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    params
}

fn certificate_error(what: &str) -> impl Fn(rcgen::Error) -> RouterError + '_ {
    move |error| RouterError::Certificate {
        what: format!("cannot make {what}"),
        detail: error.to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, RouterError> {
    crate::input::read_text(path, 64 * 1024).map_err(RouterError::from)
}

/// Answers each TLS handshake with the certificate of the name the client asked for
/// (SNI), made on first use; a client that names none gets `localhost`'s, which also
/// covers 127.0.0.1 and ::1.
pub struct NameResolver {
    authority: Authority,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for NameResolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("NameResolver")
    }
}

/// How many names' certificates are kept; past it the cache starts over (a router that
/// was asked for that many names is being scanned, not used).
const ISSUED_LIMIT: usize = 4096;

impl NameResolver {
    pub fn new(authority: Authority) -> Self {
        NameResolver {
            authority,
            issued: Mutex::new(HashMap::new()),
        }
    }

    fn certified(&self, name: &str, names: &[&str]) -> Option<Arc<CertifiedKey>> {
        let mut issued = self
            .issued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = issued.get(name) {
            return Some(Arc::clone(found));
        }
        let certified = Arc::new(self.authority.issue(names).ok()?);
        if issued.len() >= ISSUED_LIMIT {
            issued.clear();
        }
        issued.insert(name.to_string(), Arc::clone(&certified));
        Some(certified)
    }
}

impl ResolvesServerCert for NameResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello
            .server_name()
            .map(str::to_ascii_lowercase)
            .filter(|name| name == "localhost" || name.ends_with(".localhost"));
        match name {
            Some(name) if name != "localhost" => self.certified(&name, &[&name]),
            _ => self.loopback(),
        }
    }
}

impl NameResolver {
    /// `localhost`, 127.0.0.1 and ::1 in one certificate.
    fn loopback(&self) -> Option<Arc<CertifiedKey>> {
        self.certified("localhost", &["localhost", "127.0.0.1", "::1"])
    }
}

/// The TLS settings: HTTP/2 preferred, HTTP/1.1 offered (ALPN), a certificate per name.
pub fn server_config(authority: Authority) -> Result<Arc<rustls::ServerConfig>, RouterError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| RouterError::Certificate {
            what: "cannot set up TLS".to_string(),
            detail: error.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NameResolver::new(authority)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
