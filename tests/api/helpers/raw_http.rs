//! Raw HTTP/1.1 over TCP: exact bytes on the wire, for framing, header, path and slow-client
//! tricks reqwest would never send, and for fake providers that misbehave below HTTP.
//!
//! The one place tests write requests by hand and parse responses off a socket. It depends on
//! nothing in the test crate, so another test binary can include it with `#[path]`.

#![allow(dead_code)] // Each including binary uses its own part.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status_line: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Everything the server sent on one connection.
#[derive(Debug)]
pub struct RawOutcome {
    pub responses: Vec<RawResponse>,
    /// Bytes after the last complete response.
    pub rest: Vec<u8>,
    /// The server closed the connection (false: still open when reading stopped).
    pub closed: bool,
    /// From the end of writing to the close (or to the end of reading).
    pub elapsed: Duration,
}

/// The first complete response in `buf` (its body framed by `Content-Length`, absent = empty),
/// and where it ends; `None` while the head or the body is incomplete.
fn parse_one(buf: &[u8]) -> Option<(RawResponse, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            HeaderValue::from_bytes(value.trim().as_bytes()).expect("header value"),
        );
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = buf.get(end + 4..end + 4 + length)?.to_vec();
    let response = RawResponse {
        status_line,
        status,
        headers,
        body,
    };
    Some((response, end + 4 + length))
}

/// Splits `buf` into complete responses; the bytes after the last one.
pub fn parse_responses(mut buf: &[u8]) -> (Vec<RawResponse>, Vec<u8>) {
    let mut responses = Vec::new();
    while let Some((response, used)) = parse_one(buf) {
        responses.push(response);
        buf = &buf[used..];
    }
    (responses, buf.to_vec())
}

/// Reads until the peer closes or `wait` passes: what arrived, and whether it closed.
pub async fn read_bytes_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    wait: Duration,
) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let started = Instant::now();
    let closed = loop {
        let mut chunk = [0u8; 8192];
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    (buf, closed)
}

/// As [`read_bytes_until_closed`], the bytes as (lossy) text.
pub async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    wait: Duration,
) -> (String, bool) {
    let (buf, closed) = read_bytes_until_closed(stream, wait).await;
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

/// Writes `request` on a new connection to `addr` (reading at the same time, so an early answer
/// is not lost to a reset), then reads until the server closes the connection or `wait` has
/// passed.
pub async fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> RawOutcome {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let written = tokio::spawn(async move {
        // The server may answer and close before reading everything: a failed write is expected.
        let _ = writer.write_all(&request).await;
        writer
    });
    let started = Instant::now();
    let (buf, closed) = read_bytes_until_closed(&mut reader, wait).await;
    let elapsed = started.elapsed();
    drop(written.await);
    let (responses, rest) = parse_responses(&buf);
    RawOutcome {
        responses,
        rest,
        closed,
        elapsed,
    }
}

/// Reads from `stream` until one complete response has arrived; panics if the connection closes
/// first.
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> RawResponse {
    let mut buf = Vec::new();
    loop {
        if let Some((response, _)) = parse_one(&buf) {
            return response;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return parse_one(&buf).map(|(r, _)| r).unwrap_or_else(|| {
                    panic!("incomplete response: {:?}", String::from_utf8_lossy(&buf))
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `request` on a fresh connection (ignoring write errors once the server answered early)
/// and reads one response within 5 s.
pub async fn send(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("the server answers within 5 s")
}

/// `GET {path}` on a new connection, asking to keep it alive: the response head (one read, within
/// 5 s) and the still-open connection.
pub async fn get_keep_alive(addr: SocketAddr, path: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    (String::from_utf8_lossy(&buf[..n]).into_owned(), stream)
}

/// `POST {path} HTTP/1.1` with a Host, `headers` (each line ending in CRLF) and `body`.
pub fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: proxy.test\r\n{headers}\r\n{body}").into_bytes()
}

/// A JSON `POST` to `path` with a correct `Content-Length`.
pub fn post_json(path: &str, body: &str) -> Vec<u8> {
    post(
        path,
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        body,
    )
}

/// `data` as chunks of at most `size` bytes; the terminating chunk only if `finished`.
pub fn chunked(data: &[u8], size: usize, finished: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    if finished {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

/// Server side: reads until the end of one request (headers plus the declared body), or until
/// the peer closes: true when a whole request was read.
pub async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut buf).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return true;
            }
        }
    }
}
