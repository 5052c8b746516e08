//! A local HTTP proxy that records every request head it is sent: it tunnels CONNECTs to
//! their target, and forwards absolute-form requests (`POST http://host/path`) as they are
//! (servers accept that form). The egress a bank allowlists, in miniature.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct ConnectProxy {
    /// `http://127.0.0.1:port`
    pub url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(tunnel(stream, seen.clone()));
            }
        });
        Self { url, heads }
    }

    /// Every request head received, oldest first.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The first lines of the absolute-form requests received (`POST http://… HTTP/1.1`).
    pub fn forwarded(&self) -> Vec<String> {
        self.heads()
            .iter()
            .filter_map(|head| head.lines().next())
            .filter(|line| !line.starts_with("CONNECT "))
            .map(str::to_owned)
            .collect()
    }

    /// The targets of the CONNECTs received (`host:port`).
    pub fn connected_to(&self) -> Vec<String> {
        self.heads()
            .iter()
            .filter_map(|head| {
                let line = head.lines().next()?;
                let target = line.strip_prefix("CONNECT ")?.split(' ').next()?;
                Some(target.to_owned())
            })
            .collect()
    }
}

async fn tunnel(mut inbound: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match inbound.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock().unwrap().push(head.clone());
    let line = head.lines().next().unwrap_or_default().to_owned();
    let connect = line.starts_with("CONNECT ");
    // `CONNECT host:port HTTP/1.1`, or `METHOD http://host:port/path HTTP/1.1`.
    let target = line.split(' ').nth(1).and_then(|target| {
        if connect {
            return Some(target.to_owned());
        }
        let authority = target.strip_prefix("http://")?.split('/').next()?;
        Some(if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        })
    });
    let Some(target) = target else {
        let _ = inbound
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        let _ = inbound
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let opened = if connect {
        inbound
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
    } else {
        outbound.write_all(head.as_bytes()).await
    };
    if opened.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
