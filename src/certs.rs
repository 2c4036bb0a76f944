//! A private CA and a serving certificate signed by it (ECDSA P-256), for clusters without
//! cert-manager, for local runs and for tests.
//!
//! The files follow cert-manager's Secret layout (`ca.crt`, `tls.crt`, `tls.key`), plus
//! `ca.key`: with it, [`Ca::from_pem`] issues the next serving certificate under the same CA,
//! so a renewal changes only the Secret and never the webhooks' `caBundle`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use x509_parser::time::ASN1Time;

/// Name of the webhook's Service.
pub const SERVICE_NAME: &str = "llm-autoscale-webhook";
/// Namespace the manifests in `deploy/` install into.
pub const NAMESPACE: &str = "llm-autoscale-system";
/// DNS names of the serving certificate unless others are given: every name the API server
/// may use for the Service.
pub const DEFAULT_DNS_NAMES: [&str; 4] = [
    "llm-autoscale-webhook",
    "llm-autoscale-webhook.llm-autoscale-system",
    "llm-autoscale-webhook.llm-autoscale-system.svc",
    "llm-autoscale-webhook.llm-autoscale-system.svc.cluster.local",
];
/// IP addresses of the serving certificate unless others are given.
pub const DEFAULT_IPS: [IpAddr; 1] = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
/// Lifetime of a serving certificate, in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Lifetime of a CA made by [`Ca::generate`], in days (ten years: the CA only matters when it
/// changes, and a change means updating every `caBundle`).
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Upper bound accepted for any validity, in days.
pub const MAX_VALIDITY_DAYS: u32 = 36500;
/// Common name of a CA made by [`Ca::generate`].
pub const CA_COMMON_NAME: &str = "llm-autoscale-webhook-ca";

/// File names, as in a cert-manager Secret.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// Backdating of `notBefore`, for clocks that lag behind the one that signed.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
const DAY: u64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot build the certificate: {0}")]
    Rcgen(rcgen::Error),
    #[error("the certificate needs at least one DNS name or IP address")]
    NoNames,
    #[error("{0:?} is not a valid DNS name")]
    BadDnsName(String),
    #[error("validity must be between 1 and {MAX_VALIDITY_DAYS} days, got {0}")]
    BadValidity(u32),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0} already exists (pass --force to overwrite)")]
    Exists(PathBuf),
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError::Rcgen(e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |error| CertError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What the serving certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingRequest {
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub validity_days: u32,
}

impl Default for ServingRequest {
    /// The in-cluster Service names and 127.0.0.1, valid for [`DEFAULT_VALIDITY_DAYS`].
    fn default() -> Self {
        ServingRequest {
            dns_names: DEFAULT_DNS_NAMES.iter().map(|s| s.to_string()).collect(),
            ips: DEFAULT_IPS.to_vec(),
            validity_days: DEFAULT_VALIDITY_DAYS,
        }
    }
}

impl ServingRequest {
    /// The defaults plus `localhost` and `::1`: what a development server on this machine needs.
    pub fn local_development() -> Self {
        let mut req = ServingRequest::default();
        req.dns_names.insert(0, "localhost".to_string());
        req.ips.push(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
        req
    }
}

/// A serving certificate and its private key (PEM, PKCS#8).
#[derive(Clone)]
pub struct ServingCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A certificate authority able to sign serving certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn check_validity(days: u32) -> Result<Duration, CertError> {
    if days == 0 || days > MAX_VALIDITY_DAYS {
        return Err(CertError::BadValidity(days));
    }
    Ok(Duration::from_secs(u64::from(days) * DAY))
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    let lifetime = check_validity(days)?;
    let now = ASN1Time::now().to_datetime();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + lifetime;
    Ok(())
}

impl Ca {
    /// A new self-signed CA (`CN=llm-autoscale-webhook-ca`, path length 0).
    pub fn generate(validity_days: u32) -> Result<Ca, CertError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, validity_days)?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA, from its certificate and private key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// Reads `ca.crt` and `ca.key` from `dir`.
    pub fn read_dir(dir: &Path) -> Result<Ca, CertError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(io_err(&path))
        };
        Ca::from_pem(&read(CA_CERT_FILE)?, &read(CA_KEY_FILE)?)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The `caBundle` of a webhook configuration: base64 of the CA certificate's PEM.
    pub fn ca_bundle(&self) -> String {
        ca_bundle(&self.cert_pem)
    }

    /// A new serving certificate (new key, new serial) signed by this CA.
    pub fn issue(&self, req: &ServingRequest) -> Result<ServingCert, CertError> {
        if req.dns_names.is_empty() && req.ips.is_empty() {
            return Err(CertError::NoNames);
        }
        let mut sans = Vec::with_capacity(req.dns_names.len() + req.ips.len());
        for name in &req.dns_names {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|_| CertError::BadDnsName(name.clone()))?;
            if name.is_empty() || name.parse::<IpAddr>().is_ok() {
                return Err(CertError::BadDnsName(name.clone()));
            }
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(req.ips.iter().map(|ip| SanType::IpAddress(*ip)));

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cn = req
            .dns_names
            .first()
            .cloned()
            .unwrap_or_else(|| SERVICE_NAME.to_string());
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, req.validity_days)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Base64 (standard alphabet, no line breaks) of a PEM certificate bundle.
pub fn ca_bundle(ca_cert_pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_cert_pem.as_bytes())
}

/// A CA and a serving certificate signed by it.
#[derive(Clone)]
pub struct CertBundle {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub serving: ServingCert,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

/// A new CA ([`CA_VALIDITY_DAYS`]) and a serving certificate for `req`.
pub fn generate(req: &ServingRequest) -> Result<CertBundle, CertError> {
    let ca = Ca::generate(CA_VALIDITY_DAYS.max(req.validity_days))?;
    let serving = ca.issue(req)?;
    Ok(CertBundle {
        ca_cert_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        serving,
    })
}

impl CertBundle {
    pub fn ca_bundle(&self) -> String {
        ca_bundle(&self.ca_cert_pem)
    }

    /// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `dir` (created if needed).
    /// Private keys get mode 0600. Each file is written to a temporary name and renamed, so a
    /// reader never sees half a file. Existing files are an error unless `overwrite`.
    pub fn write_dir(&self, dir: &Path, overwrite: bool) -> Result<(), CertError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let files = [
            (CA_CERT_FILE, self.ca_cert_pem.as_str(), false),
            (CA_KEY_FILE, self.ca_key_pem.as_str(), true),
            (CERT_FILE, self.serving.cert_pem.as_str(), false),
            (KEY_FILE, self.serving.key_pem.as_str(), true),
        ];
        if !overwrite {
            for (name, _, _) in &files {
                let path = dir.join(name);
                if path.exists() {
                    return Err(CertError::Exists(path));
                }
            }
        }
        for (name, content, private) in files {
            write_file(&dir.join(name), content.as_bytes(), private)?;
        }
        Ok(())
    }
}

/// Writes `content` to `path` through a temporary file in the same directory and a rename.
/// `private`: mode 0600 (on Unix), else 0644.
pub fn write_file(path: &Path, content: &[u8], private: bool) -> Result<(), CertError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(content).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_cert_is_signed_by_the_ca_and_carries_the_names() {
        let bundle = generate(&ServingRequest::default()).expect("generate");
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(bundle.ca_cert_pem.as_bytes()).unwrap();
        let ca = ca_pem.parse_x509().unwrap();
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(bundle.serving.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert!(ca.is_ca());
        assert!(!cert.is_ca());
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        for dns in DEFAULT_DNS_NAMES {
            assert!(names.iter().any(|n| n.contains(dns)), "{dns} in {names:?}");
        }
        assert!(
            sans.value.general_names.iter().any(|n| matches!(
                n,
                x509_parser::extensions::GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1]
            )),
            "{names:?}"
        );
    }

    #[test]
    fn a_reloaded_ca_signs_certificates_that_verify_against_the_original() {
        let bundle = generate(&ServingRequest::default()).unwrap();
        let ca = Ca::from_pem(&bundle.ca_cert_pem, &bundle.ca_key_pem).unwrap();
        let next = ca.issue(&ServingRequest::default()).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(bundle.ca_cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        let (_, a) = x509_parser::pem::parse_x509_pem(bundle.serving.cert_pem.as_bytes()).unwrap();
        let (_, b) = x509_parser::pem::parse_x509_pem(next.cert_pem.as_bytes()).unwrap();
        let (a, b) = (a.parse_x509().unwrap(), b.parse_x509().unwrap());
        b.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_ne!(a.raw_serial(), b.raw_serial());
    }

    #[test]
    fn rejects_bad_requests() {
        let ca = Ca::generate(10).unwrap();
        let none = ServingRequest {
            dns_names: vec![],
            ips: vec![],
            validity_days: 1,
        };
        assert!(matches!(ca.issue(&none), Err(CertError::NoNames)));
        let bad = ServingRequest {
            dns_names: vec!["héllo".into()],
            ..ServingRequest::default()
        };
        assert!(matches!(ca.issue(&bad), Err(CertError::BadDnsName(_))));
        let zero = ServingRequest {
            validity_days: 0,
            ..ServingRequest::default()
        };
        assert!(matches!(ca.issue(&zero), Err(CertError::BadValidity(0))));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_existing_files_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bundle = generate(&ServingRequest::default()).unwrap();
        bundle.write_dir(dir.path(), false).unwrap();
        for (name, mode) in [
            (KEY_FILE, 0o600),
            (CA_KEY_FILE, 0o600),
            (CERT_FILE, 0o644),
            (CA_CERT_FILE, 0o644),
        ] {
            let m = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, mode, "{name}");
        }
        assert!(matches!(
            bundle.write_dir(dir.path(), false),
            Err(CertError::Exists(_))
        ));
        bundle.write_dir(dir.path(), true).unwrap();
    }
}
