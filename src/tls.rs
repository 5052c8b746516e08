//! The process-wide TLS crypto provider. rustls is built with ring only (the provider
//! sqlx and lapin already use), so it must be installed before the first TLS client.

/// Installs ring as the rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
