//! The agent's TLS client configuration, shared by enrolment (reqwest) and
//! the WebSocket (tokio-tungstenite): rustls with the ring provider, trusting
//! the web PKI roots plus the certificates of an optional CA file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs ring as rustls' process-wide crypto provider. Idempotent: an
/// already-installed provider (ours or a test's) is kept.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client config trusting the web PKI and, when given, every certificate
/// in `ca_file` (PEM).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    install_crypto_provider();
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let ca_error = |message: String| TlsError::CaFile {
            path: path.to_owned(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|err| ca_error(err.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ca_error(err.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate found".to_owned()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|err| ca_error(format!("unusable certificate: {err}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CA file the config trusts the web PKI roots.
    #[test]
    fn web_pki_only() {
        client_config(None).unwrap();
    }

    /// A missing CA file, or one without certificates, is a clear error.
    #[test]
    fn bad_ca_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = client_config(Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    /// A PEM CA file with a well-formed certificate is accepted.
    #[test]
    fn custom_ca_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, TEST_CA_PEM).unwrap();
        client_config(Some(&path)).unwrap();
    }

    /// A self-signed CA certificate made with openssl for this test (its
    /// private key was not kept).
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAT+gAwIBAgIUNZ3Q6sAQhdMSYfbXn2CaE198WRowCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWcmVzdGljLW1hbmFnZXIgdGVzdCBDQTAgFw0yNjExMjMxNjQ1
MzZaGA8yMTI2MTAzMDE2NDUzNlowITEfMB0GA1UEAwwWcmVzdGljLW1hbmFnZXIg
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABL6jtRfH2bvg5r7FOesC
ypxsgeY06tECDf63e3N65bCZqd+PoihhvuKXlzhoqzdtJKhGdXBQG+rdPLWSlAwk
yc6jUzBRMB0GA1UdDgQWBBTJtkpWTI+EuOeBrTBvpW+nyLEUmTAfBgNVHSMEGDAW
gBTJtkpWTI+EuOeBrTBvpW+nyLEUmTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0kAMEYCIQCUXKWX5GwY+FNrkCtLPTbC27ldP+zxLlO6f+WYIb6brgIhAJl8
O3YneiPJA2jwqKGATnlewKgerqzMJgItbfK0df+W
-----END CERTIFICATE-----
";
}
