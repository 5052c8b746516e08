//! An HTTPS endpoint on 127.0.0.1 that requires a client certificate signed by its CA, in
//! front of the test [`Receiver`]: a handshake without the right certificate fails, as a
//! bank's gateway would refuse it.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pki::{Pair, TestCa};
use crate::receiver::{Receiver, Reply};

pub struct TlsReceiver {
    pub receiver: Receiver,
    /// `https://127.0.0.1:port`
    pub base: String,
}

impl TlsReceiver {
    /// Serves `server` (certificate and key), asking for a client certificate issued by
    /// `clients`.
    pub async fn start(
        server: &Pair,
        clients: &TestCa,
        script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        eventgate::tls::install_crypto_provider();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(clients.pem().as_bytes()).unwrap())
            .unwrap();
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let receiver = Receiver::detached(script);
        let router = receiver.router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    // A refused handshake ends here: the client sees the TLS alert.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = TowerToHyperService::new(router);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { receiver, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
