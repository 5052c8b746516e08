//! A long-poll waiter on a connection of its own: one request written, one answer read
//! into a buffer the waiter owns, with `httparse` reading the answer's head.
//!
//! The load generator shares the machine's two cores with the server, so whatever it
//! spends on an answer during a wake-up delays the receipts after it. Through reqwest's
//! general-purpose client the generator spent about as much per answer as the server; through
//! hyper's client connections (one task driving each connection, a channel to the waiter,
//! a read buffer allocated when the answer came) it still spent about 29 µs, 43% of it
//! faulting in fresh heap pages for 5,000 answers at once (docs/BENCHMARKS.md, thirteenth
//! section). Here each waiter is one task, and its buffer is written to before the
//! request is sent: the answer lands in memory already faulted in, and the body's copy
//! is its one allocation.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Room for the feed's one-event answer with its headers; a longer answer stops the run.
const ANSWER_BYTES: usize = 16 * 1024;

/// What a waiter got: its answer's body, when its last byte was in, and its connection,
/// open until the receipt is dropped (closing it at once would put its teardown on both
/// sides into the wake-up being measured).
pub struct Receipt {
    pub body: Vec<u8>,
    pub received: Instant,
    _connection: TcpStream,
}

/// Sends `GET path` with `key` to `host` (`127.0.0.1:port`) on a new connection and
/// waits for the whole answer. Anything but a 200 with a `Content-Length` body stops the
/// run with what came.
pub async fn wait(host: &str, path: &str, key: &str) -> Receipt {
    let mut stream = TcpStream::connect(host)
        .await
        .unwrap_or_else(|err| panic!("long-poll: cannot connect to {host}: {err}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    // Written through once now (not merely reserved, which the allocator may leave
    // unmapped): the answer lands in pages already faulted in.
    let mut buffer = vec![0xA5_u8; ANSWER_BYTES];
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {key}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|err| panic!("long-poll: cannot send the request: {err}"));
    let mut filled = 0;
    loop {
        let read = stream
            .read(&mut buffer[filled..])
            .await
            .unwrap_or_else(|err| panic!("long-poll: no answer: {err}"));
        assert!(read > 0, "long-poll: the server closed the connection");
        filled += read;
        if let Some(end) = complete_answer(&buffer[..filled]) {
            let received = Instant::now();
            return Receipt {
                body: buffer[end.body_start..end.body_end].to_vec(),
                received,
                _connection: stream,
            };
        }
        assert!(
            filled < buffer.len(),
            "long-poll: the answer is longer than {ANSWER_BYTES} bytes: {}",
            String::from_utf8_lossy(&buffer[..filled])
        );
    }
}

struct AnswerEnd {
    body_start: usize,
    body_end: usize,
}

/// Where the body of the 200 answer in `bytes` lies, once all of it is in; `None` while
/// more is to come. Anything but a 200 with a `Content-Length` stops the run.
fn complete_answer(bytes: &[u8]) -> Option<AnswerEnd> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut answer = httparse::Response::new(&mut headers);
    let head = match answer.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return None,
        Err(err) => panic!(
            "long-poll: not an HTTP answer ({err}): {}",
            String::from_utf8_lossy(bytes)
        ),
    };
    let length = answer
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .and_then(|header| {
            std::str::from_utf8(header.value)
                .ok()?
                .parse::<usize>()
                .ok()
        });
    let (Some(200), Some(length)) = (answer.code, length) else {
        panic!(
            "long-poll: unexpected answer: {}",
            String::from_utf8_lossy(bytes)
        );
    };
    (bytes.len() >= head + length).then_some(AnswerEnd {
        body_start: head,
        body_end: head + length,
    })
}
