//! A SOCKS5 endpoint on loopback that applies the address policy to every connection a
//! client library makes on its own. The Kafka client connects to the brokers a cluster's
//! metadata names, not only to the bootstrap servers the destination was saved with; it
//! is pointed at this endpoint, so each of those connections is resolved and checked here,
//! and goes to the very address that passed.
//!
//! Only what [`AddressPolicy`] allows is reachable through it, so another local process
//! that found the port would gain nothing the policy does not already grant. One endpoint
//! serves one sink and closes with it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::pump::{acknowledge_now, pump_both_ways};
use super::{AddressPolicy, PolicyError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const CONNECT: u8 = 1;
const IPV4: u8 = 1;
const DOMAIN: u8 = 3;
const IPV6: u8 = 4;
const SUCCEEDED: u8 = 0;
const NOT_ALLOWED: u8 = 2;
const HOST_UNREACHABLE: u8 = 4;
const COMMAND_NOT_SUPPORTED: u8 = 7;

/// Why the last connection was refused, kept for the destination's status.
type LastRefusal = Arc<Mutex<Option<PolicyError>>>;

pub struct SocksEndpoint {
    address: SocketAddr,
    refused: LastRefusal,
    accepting: JoinHandle<()>,
}

impl SocksEndpoint {
    /// Listens on a free loopback port.
    pub async fn start(policy: AddressPolicy) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let refused = LastRefusal::default();
        let accepting = tokio::spawn(accept(listener, policy, refused.clone()));
        Ok(Self {
            address,
            refused,
            accepting,
        })
    }

    /// `host:port` to give the client as its proxy.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The policy's reason for the latest refused connection, once.
    pub fn take_refusal(&self) -> Option<PolicyError> {
        self.refused.lock().ok()?.take()
    }
}

impl Drop for SocksEndpoint {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, policy: AddressPolicy, refused: LastRefusal) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (policy, refused) = (policy.clone(), refused.clone());
        tokio::spawn(async move {
            if let Err(err) = relay(stream, &policy, &refused).await {
                tracing::debug!(error = %err, "egress proxy connection ended");
            }
        });
    }
}

/// Serves one SOCKS5 CONNECT (RFC 1928, no authentication), then copies bytes both ways.
async fn relay(
    mut client: TcpStream,
    policy: &AddressPolicy,
    refused: &LastRefusal,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let [version, methods] = read_array(&mut client).await?;
    let mut offered = vec![0; usize::from(methods)];
    read_now(&mut client, &mut offered).await?;
    if version != VERSION || !offered.contains(&NO_AUTHENTICATION) {
        client.write_all(&[VERSION, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[VERSION, NO_AUTHENTICATION]).await?;

    let [_, command, _, address_type] = read_array(&mut client).await?;
    let host = match address_type {
        IPV4 => Ipv4Addr::from(read_array::<4>(&mut client).await?).to_string(),
        IPV6 => Ipv6Addr::from(read_array::<16>(&mut client).await?).to_string(),
        DOMAIN => {
            let [length] = read_array(&mut client).await?;
            let mut name = vec![0; usize::from(length)];
            read_now(&mut client, &mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return reply(&mut client, COMMAND_NOT_SUPPORTED).await,
    };
    let port = u16::from_be_bytes(read_array(&mut client).await?);
    if command != CONNECT {
        return reply(&mut client, COMMAND_NOT_SUPPORTED).await;
    }
    let addresses = match policy.resolve(&host, port).await {
        Ok(addresses) => addresses,
        Err(err) => {
            if let Ok(mut last) = refused.lock() {
                *last = Some(err);
            }
            return reply(&mut client, NOT_ALLOWED).await;
        }
    };
    let mut upstream = None;
    for address in addresses {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            upstream = Some(stream);
            break;
        }
    }
    let Some(upstream) = upstream else {
        return reply(&mut client, HOST_UNREACHABLE).await;
    };
    reply(&mut client, SUCCEEDED).await?;
    pump_both_ways(client, upstream).await
}

async fn read_array<const N: usize>(stream: &mut TcpStream) -> std::io::Result<[u8; N]> {
    let mut bytes = [0; N];
    read_now(stream, &mut bytes).await?;
    Ok(bytes)
}

/// Reads exactly `buffer`'s length, acknowledging what arrives at once, as the pump does
/// after the handshake. A client that writes its request a few bytes at a time on a
/// socket with Nagle's algorithm on (rskafka writes the CONNECT request's first byte
/// alone) holds the rest until that byte is acknowledged, and after our reply the kernel
/// delays that acknowledgement by up to 40 ms expecting to carry it on an answer: each
/// connection to a broker cost 41-44 ms before it was open, about 180 ms for a new Kafka
/// destination's four, and the first events a relay sent waited for them.
async fn read_now(stream: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<()> {
    acknowledge_now(stream);
    stream.read_exact(buffer).await?;
    acknowledge_now(stream);
    Ok(())
}

/// A reply with an unspecified bound address (clients do not use it).
async fn reply(client: &mut TcpStream, code: u8) -> std::io::Result<()> {
    client
        .write_all(&[VERSION, code, 0, IPV4, 0, 0, 0, 0, 0, 0])
        .await
}
