//! A long-poll waiter on a connection of its own, spoken through hyper's client
//! connection API rather than reqwest's pooled client.
//!
//! The load generator shares the machine's two cores with the server, so whatever it
//! spends on an answer during a wake-up delays the receipts after it. Through reqwest's
//! general-purpose client (its pool and layers) the generator spent about as much per
//! answer as the server (docs/BENCHMARKS.md, eleventh and twelfth sections); a waiter
//! needs only one request on one connection, kept open as a long-polling client keeps it.

use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What a waiter got: its answer's body, when its last byte was in, and its connection,
/// open until the receipt is dropped (closing it at once would put its teardown on both
/// sides into the wake-up being measured).
pub struct Receipt {
    pub body: Bytes,
    pub received: Instant,
    _connection: http1::SendRequest<Empty<Bytes>>,
}

/// Sends `GET path` with `key` to `host` (`127.0.0.1:port`) on a new connection and
/// waits for the whole answer. Anything but 200 stops the run with the status and body.
pub async fn wait(host: &str, path: &str, key: &str) -> Receipt {
    let stream = TcpStream::connect(host)
        .await
        .unwrap_or_else(|err| panic!("long-poll: cannot connect to {host}: {err}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("long-poll: HTTP/1.1 handshake");
    // Drives the connection until its `SendRequest` (kept in the receipt) is dropped.
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(HOST, host)
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|err| panic!("long-poll: no answer: {err}"));
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("long-poll: body")
        .to_bytes();
    let received = Instant::now();
    if status != StatusCode::OK {
        panic!(
            "long-poll: unexpected {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Receipt {
        body,
        received,
        _connection: sender,
    }
}
