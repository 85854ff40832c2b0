//! TLS: the server configuration from PEM files (HTTP/2 and HTTP/1.1 by ALPN), and the
//! self-signed certificate `wasmgate demo` makes when it has none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS set-up was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("{}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    /// The key file could not be read or holds no private key.
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// The certificate and key do not go together, or rustls refused them.
    #[error("{}: {reason}", cert.display())]
    Mismatch { cert: PathBuf, reason: String },
    /// A certificate could not be generated or written.
    #[error("self-signed certificate in {}: {reason}", dir.display())]
    Generate { dir: PathBuf, reason: String },
}

/// A rustls server configuration for `cert` (PEM chain, leaf first) and `key` (PEM), offering
/// HTTP/2 and HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: "no PEM certificate in the file".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Makes a self-signed certificate for `localhost` and `127.0.0.1` in `dir` (as `cert.pem` and
/// `key.pem`) unless both files are there already. Returns their paths.
pub fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let fail = |reason: String| TlsError::Generate {
        dir: dir.to_path_buf(),
        reason,
    };
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&key_path, generated.signing_key.serialize_pem())
        .map_err(|e| fail(e.to_string()))?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("wasmgate-tls-{}", std::process::id()));
        let (cert, key) = ensure_self_signed(&dir).unwrap();
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");

        let err = server_config(&dir.join("missing.pem"), &key).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = server_config(&key, &key).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let err = server_config(&cert, &cert).unwrap_err();
        assert!(
            err.to_string().contains("key.pem") || err.to_string().contains("cert.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
