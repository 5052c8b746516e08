//! Copying a connection's bytes both ways between two sockets without the delays TCP adds
//! to small writes: each read is acknowledged at once, and writes go out unbatched. The
//! egress endpoints ([`super::socks`], [`super::forward`]) pass connections through it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// Bytes copied per read, each way.
const PUMP_BUFFER: usize = 64 * 1024;

/// Copies bytes both ways until both sides have finished, passing each side's end of
/// stream on to the other.
///
/// Without delay, which a plain copy does not give: a Kafka client (rskafka) writes
/// each request's 4-byte length and its body in two writes on a socket with Nagle's
/// algorithm on, so the body waits for the length's acknowledgement, which the receiving
/// kernel delays by up to 40 ms while it expects an answer to carry it. Every produce and
/// fetch request paid that (a Kafka relay from a backlog on tansu: 5.1k events/s, and
/// 34-43k without the wait). An MQTT broker with Nagle's algorithm on (Mosquitto's
/// default) does the same to its acknowledgements: each PUBACK after the first waits for
/// ours of the one before. So each read here is acknowledged at once (`TCP_QUICKACK`,
/// which the kernel clears again, hence after every read), and this side's own writes go
/// out unbatched (`TCP_NODELAY`).
pub async fn pump_both_ways(mut client: TcpStream, mut upstream: TcpStream) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    tokio::try_join!(
        pump(client_read, upstream_write),
        pump(upstream_read, client_write)
    )?;
    Ok(())
}

/// Copies one way until end of stream, then shuts the writing side down.
async fn pump(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>) -> std::io::Result<()> {
    let mut buffer = vec![0; PUMP_BUFFER];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        acknowledge_now(from.as_ref());
        to.write_all(&buffer[..read]).await?;
    }
}

/// Acknowledges what `stream` has received without the delayed-ACK wait. Best effort: on
/// failure (or off Linux) the bytes still flow, only later.
pub(super) fn acknowledge_now(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::debug!(error = %err, "cannot set TCP_QUICKACK");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::net::TcpListener;

    use super::*;

    /// Two connected loopback sockets: (the one a test holds, the one the pump gets).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (held, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (held.expect("connect"), accepted.expect("accept").0)
    }

    async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.expect("read");
        bytes
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_and_each_end_of_stream_is_passed_on_alone() {
        let (mut client, client_side) = pair().await;
        let (mut broker, upstream_side) = pair().await;
        let pumping = tokio::spawn(pump_both_ways(client_side, upstream_side));

        // A request written as its length, then its body, as rskafka writes it.
        client.write_all(&5u32.to_be_bytes()).await.expect("write");
        client.write_all(b"hello").await.expect("write");
        let mut request = [0; 9];
        broker.read_exact(&mut request).await.expect("request");
        assert_eq!(&request[4..], b"hello");
        assert_eq!(&request[..4], &5u32.to_be_bytes());

        // The client stops sending; the broker sees that and can still answer in full.
        client.shutdown().await.expect("shutdown");
        assert_eq!(read_to_end(&mut broker).await, Vec::<u8>::new());
        let answer = vec![7u8; 3 * PUMP_BUFFER + 11];
        broker.write_all(&answer).await.expect("answer");
        broker.shutdown().await.expect("shutdown");
        assert_eq!(read_to_end(&mut client).await, answer);

        pumping.await.expect("pump task").expect("pump");
    }
}
