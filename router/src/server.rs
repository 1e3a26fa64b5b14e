//! Accepting S3 connections: TCP_NODELAY, HTTPS when given a certificate
//! (rustls, PEM files), HTTP/1.1 with a deadline for each request's
//! headers, the client's address and transport as the access check sees
//! them, and a graceful shutdown.
//!
//! The header deadline also bounds how long an idle keep-alive connection
//! is kept: hyper starts it whenever the connection waits for a request.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client has to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who sent a request, as policies' `aws:SourceIp` and
/// `aws:SecureTransport` see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// Whether the client's own connection was TLS.
    pub secure: bool,
}

/// The peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are
/// believed (the load balancers); anyone else's are ignored.
#[derive(Debug, Clone)]
pub struct TrustedProxies(pub Vec<IpAddr>);

impl TrustedProxies {
    /// The client of a request that came from `peer` over `tls`.
    pub fn client(&self, peer: IpAddr, tls: bool, headers: &http::HeaderMap) -> Client {
        if !self.0.contains(&peer) {
            return Client {
                ip: peer,
                secure: tls,
            };
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // A proxy appends the address it saw: the last entry is the one
        // a trusted proxy vouches for.
        let ip = header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok())
            .unwrap_or(peer);
        let secure = match header("x-forwarded-proto") {
            Some(proto) => proto.eq_ignore_ascii_case("https"),
            None => tls,
        };
        Client { ip, secure }
    }
}

/// The TLS configuration of a certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a TLS configuration")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How connections are served.
pub struct Connections {
    /// HTTPS when given.
    pub tls: Option<TlsAcceptor>,
    pub proxies: TrustedProxies,
    /// How long a client has to send a request's headers, and the
    /// longest an idle keep-alive connection is kept.
    pub header_timeout: Duration,
}

/// A connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves `app` on `listener` until `stopping` resolves, then waits for
/// the connections' requests under way to finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    connections: Connections,
    stopping: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Connections {
        tls,
        proxies,
        header_timeout,
    } = connections;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let proxies = Arc::new(proxies);
    tokio::pin!(stopping);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    // Out of descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopping => break,
        };
        // Without TCP_NODELAY a small response's body waits for the ACK of
        // its headers: a 4 KiB GET took 40 ms (the peer's delayed ACK).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "setting TCP_NODELAY");
        }
        let secure = tls.is_some();
        let app = app.clone();
        let proxies = proxies.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            let client = proxies.client(peer.ip(), secure, request.headers());
            request.extensions_mut().insert(client);
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let http = http.clone();
        tokio::spawn(async move {
            let io: Box<dyn Io> = match tls {
                None => Box::new(tcp),
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => Box::new(stream),
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
            };
            let connection = watcher.watch(http.serve_connection(TokioIo::new(io), service));
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_count_from_trusted_proxies_only() {
        let proxies = TrustedProxies(vec!["127.0.0.1".parse().unwrap()]);
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 198.18.0.7".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let via_proxy = proxies.client("127.0.0.1".parse().unwrap(), false, &headers);
        assert_eq!(
            via_proxy,
            Client {
                ip: "198.18.0.7".parse().unwrap(),
                secure: true
            }
        );
        let direct = proxies.client("198.18.0.9".parse().unwrap(), false, &headers);
        assert_eq!(
            direct,
            Client {
                ip: "198.18.0.9".parse().unwrap(),
                secure: false
            }
        );
        let tls = proxies.client("198.18.0.9".parse().unwrap(), true, &http::HeaderMap::new());
        assert!(tls.secure);
    }
}
