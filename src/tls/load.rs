//! Reading the PEM files of `[server:main]`: the server's certificate chain and key, and
//! the client trust roots (one bundle, or a directory of them as ESGF distributes its
//! trust roots, where hash-named `.0` files sit beside signing policies and CRLs).

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS file that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file of this `[server:main]` key cannot be used.
    #[error("{key}: {source}")]
    Setting {
        /// `certfile`, `keyfile` or `client_ca`.
        key: &'static str,
        /// Why.
        source: Box<TlsError>,
    },
    /// The file or directory cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No PEM certificate in it.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No PEM private key in it.
    #[error("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A trust root webpki cannot use.
    #[error("{}: unusable CA certificate: {source}", path.display())]
    BadRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The key does not fit the certificate, or rustls refuses the pair.
    #[error("certificate and key: {0}")]
    Server(rustls::Error),
    /// The client certificate verifier cannot be built from the roots.
    #[error("client_ca: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsError {
    /// The same error, naming the `[server:main]` key whose file it is about.
    pub fn at(self, key: &'static str) -> TlsError {
        TlsError::Setting {
            key,
            source: Box::new(self),
        }
    }
}

/// The certificate chain of a PEM file, leaf first.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|_| TlsError::NoKey { path: path.into() })
}

/// Trust roots from a PEM bundle, or from every file of a directory that holds PEM
/// certificates (other files, such as signing policies and CRLs, are passed over).
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.into(),
        source,
    };
    let mut store = RootCertStore::empty();
    if !path.is_dir() {
        add_roots(&mut store, path, &certificates(path)?)?;
        return Ok(store);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        match certificates(&file) {
            Ok(certs) => add_roots(&mut store, &file, &certs)?,
            Err(TlsError::NoCertificate { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(store)
}

fn add_roots(
    store: &mut RootCertStore,
    path: &Path,
    certs: &[CertificateDer<'static>],
) -> Result<(), TlsError> {
    for cert in certs {
        store
            .add(cert.clone())
            .map_err(|source| TlsError::BadRoot {
                path: path.into(),
                source,
            })?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}
