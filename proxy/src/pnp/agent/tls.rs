//! TLS toward the server: the rustls client configuration for a
//! [`TlsTrust`], the pinned-certificate verifier, and the one-line wording
//! of HTTP and TLS failures.
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::{AgentConfigError, TlsTrust};

/// Reads every certificate of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, AgentConfigError> {
    let pem = std::fs::read(path).map_err(|source| AgentConfigError::ReadPem {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentConfigError::NoCertificate {
            path: path.to_owned(),
            detail: Some(e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(AgentConfigError::NoCertificate {
            path: path.to_owned(),
            detail: None,
        });
    }
    Ok(certs)
}

/// The rustls client configuration for `trust` (ring, TLS 1.2 and 1.3). No
/// trust gives an empty root store: any https server is refused.
pub(super) fn tls_config(trust: Option<&TlsTrust>) -> Result<ClientConfig, AgentConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(match trust {
        None => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        Some(TlsTrust::CaBundle(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| AgentConfigError::BadCaCertificate {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Some(TlsTrust::PinnedCert(path)) => {
            let verifier = PinnedVerifier {
                pinned: read_certs(path)?,
                path: path.clone(),
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    })
}

/// Accepts exactly the pinned certificates; handshake signatures are still
/// verified, so the server must hold the pinned certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    path: PathBuf,
    provider: Arc<CryptoProvider>,
}

/// The server presented a certificate other than the pinned one(s).
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate is not the pinned certificate from {path}")]
struct NotPinned {
    path: PathBuf,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned {
                    path: self.path.clone(),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error and its causes on one line; a TLS failure is named as such,
/// with the reason a certificate was refused.
pub(super) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = find_tls(e) {
            parts.push(describe_tls(tls));
            break;
        }
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The rustls error `e` is or wraps (in nested `io::Error`s, which hide it
/// from `source()`), if any.
fn find_tls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut e = e;
    for _ in 0..8 {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let io = e.downcast_ref::<std::io::Error>()?;
        e = io.get_ref()?;
    }
    None
}

/// The rustls error anywhere in `error`'s chain of causes, if any.
pub(super) fn find_tls_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = find_tls(e) {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn describe_tls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            format!("TLS: server certificate refused: {}", other.0)
        }
        rustls::Error::InvalidCertificate(reason) => {
            format!("TLS: server certificate refused: {reason}")
        }
        other => format!("TLS: {other}"),
    }
}
