//! A loopback endpoint that forwards every connection made to it to one address the
//! policy already passed, through [`super::pump`]. For a client library that connects on
//! its own and whose socket eventgate cannot tune: the MQTT client is pointed here, so the
//! broker's acknowledgements are acknowledged at once (see `crate::delivery::mqtt`). One
//! endpoint serves one sink and closes with it; the client's reconnections come back here
//! and go to the same address. Another local process that found the port would reach only
//! that address, which the policy already allows.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::pump::pump_both_ways;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the latest connection to the target failed, kept for the destination's status: the
/// client itself only sees its loopback connection closed.
type LastFailure = Arc<Mutex<Option<std::io::Error>>>;

pub struct ForwardEndpoint {
    address: SocketAddr,
    failure: LastFailure,
    accepting: JoinHandle<()>,
}

impl ForwardEndpoint {
    /// Listens on a free loopback port; each connection is forwarded to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let failure = LastFailure::default();
        let accepting = tokio::spawn(accept(listener, target, failure.clone()));
        Ok(Self {
            address,
            failure,
            accepting,
        })
    }

    /// Where the client connects instead of `target`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Why the latest connection to the target failed (refused, unreachable, timed out),
    /// once.
    pub fn take_failure(&self) -> Option<std::io::Error> {
        self.failure.lock().ok()?.take()
    }
}

impl Drop for ForwardEndpoint {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, failure: LastFailure) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let failure = failure.clone();
        tokio::spawn(async move {
            // A target that cannot be reached closes the client's connection: the client
            // sees its connection fail, and the endpoint keeps why.
            let upstream =
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
                    Ok(Ok(upstream)) => upstream,
                    Ok(Err(err)) => {
                        if let Ok(mut last) = failure.lock() {
                            *last = Some(err);
                        }
                        return;
                    }
                    Err(_) => {
                        if let Ok(mut last) = failure.lock() {
                            *last = Some(std::io::ErrorKind::TimedOut.into());
                        }
                        return;
                    }
                };
            if let Err(err) = pump_both_ways(client, upstream).await {
                tracing::debug!(error = %err, "forwarded connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn every_connection_reaches_the_target_and_reconnections_too() {
        let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let endpoint = ForwardEndpoint::start(target.local_addr().expect("address"))
            .await
            .expect("endpoint");
        for round in 0..2u8 {
            let mut client = TcpStream::connect(endpoint.address())
                .await
                .expect("connect");
            let (mut served, _) = target.accept().await.expect("a forwarded connection");
            client.write_all(&[round, 1, 2]).await.expect("write");
            let mut got = [0; 3];
            served.read_exact(&mut got).await.expect("read");
            assert_eq!(got, [round, 1, 2]);
            served.write_all(b"ack").await.expect("answer");
            let mut answer = [0; 3];
            client.read_exact(&mut answer).await.expect("answer back");
            assert_eq!(&answer, b"ack");
        }
    }

    #[tokio::test]
    async fn a_target_that_refuses_closes_the_clients_connection() {
        let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let target = closed.local_addr().expect("address");
        drop(closed);
        let endpoint = ForwardEndpoint::start(target).await.expect("endpoint");
        let mut client = TcpStream::connect(endpoint.address())
            .await
            .expect("connect");
        let mut bytes = Vec::new();
        // Bounded only so that a connection left open fails the test instead of hanging it.
        let read = tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut bytes))
            .await
            .expect("the client's connection is closed, not left open");
        assert!(
            read.is_err() || bytes.is_empty(),
            "nothing came from nowhere"
        );
        let failure = endpoint.take_failure().expect("why it failed is kept");
        assert_eq!(failure.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(endpoint.take_failure().is_none(), "taken once");
    }
}
