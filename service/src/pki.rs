//! A small certificate authority: the cloud CA that signs gateway credentials, and each lab's CA
//! that signs its tablets' client certificates. Keys are ECDSA P-256.

use std::fs;
use std::io::Write;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::tls::sha256_hex;

/// Certificate work that failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the input.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A CA file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A certificate issued by a [`CertAuthority`].
#[derive(Clone)]
pub struct IssuedCert {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM PKCS#8 private key; `None` when signed from a CSR (the key never left its owner).
    pub key_pem: Option<String>,
    /// Hex serial number.
    pub serial_hex: String,
    /// Hex SHA-256 of the DER certificate.
    pub sha256_hex: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial_hex", &self.serial_hex)
            .field("sha256_hex", &self.sha256_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA: its certificate and the key that signs with it.
pub struct CertAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// A new self-signed CA valid ten years. Returns the CA and its key in PEM (to be stored).
    pub fn generate(common_name: &str) -> Result<(Self, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok((
            Self {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            },
            key_pem,
        ))
    }

    /// Loads a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// Loads the CA kept in `dir` (`ca.pem`, `ca.key`), creating it on first use. The key file is
    /// written readable by its owner only.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<Self, PkiError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if cert_path.is_file() && key_path.is_file() {
            let cert = read(&cert_path)?;
            let key = read(&key_path)?;
            return Self::from_pem(&cert, &key);
        }
        fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let (ca, key_pem) = Self::generate(common_name)?;
        write_private(&key_path, &key_pem)?;
        fs::write(&cert_path, &ca.cert_pem).map_err(|source| io_error(&cert_path, source))?;
        Ok(ca)
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `dns_names` (IP addresses accepted too), valid `days`.
    pub fn issue_server(&self, common_name: &str, dns_names: &[String], days: i64) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = dns_names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_with_new_key(params, common_name, None, days)
    }

    /// A client certificate whose subject is `common_name` in organisational unit `unit` (a gateway's
    /// credential carries its lab code there), valid `days`.
    pub fn issue_client(&self, common_name: &str, unit: &str, days: i64) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_with_new_key(params, common_name, Some(unit), days)
    }

    /// Signs a tablet's CSR as a client certificate. The subject is ours, not the CSR's: a tablet
    /// cannot choose what it is called.
    pub fn sign_csr(&self, csr_pem: &str, common_name: &str, unit: &str, days: i64) -> Result<IssuedCert, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        csr.params.distinguished_name = name(common_name, Some(unit));
        csr.params.subject_alt_names = Vec::new();
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let (not_before, not_after) = validity(days);
        csr.params.not_before = not_before;
        csr.params.not_after = not_after;
        let serial = random_serial();
        csr.params.serial_number = Some(serial.clone());
        let cert = csr.signed_by(&self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: None,
            serial_hex: hex::encode(serial.as_ref()),
            sha256_hex: sha256_hex(cert.der()),
            not_after,
        })
    }

    fn issue_with_new_key(
        &self,
        mut params: CertificateParams,
        common_name: &str,
        unit: Option<&str>,
        days: i64,
    ) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate()?;
        params.distinguished_name = name(common_name, unit);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let (not_before, not_after) = validity(days);
        params.not_before = not_before;
        params.not_after = not_after;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
            serial_hex: hex::encode(serial.as_ref()),
            sha256_hex: sha256_hex(cert.der()),
            not_after,
        })
    }
}

fn name(common_name: &str, unit: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "LabAnalyse");
    if let Some(unit) = unit {
        dn.push(DnType::OrganizationalUnitName, unit);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    // A little backdating tolerates clocks that run slightly behind ours.
    (now - Duration::minutes(10), now + Duration::days(days))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&uuid::Uuid::new_v4().into_bytes());
    // Positive, as DER integers must be.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    file.write_all(contents.as_bytes())
        .map_err(|source| io_error(path, source))
}
