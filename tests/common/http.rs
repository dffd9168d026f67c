//! The one loopback server of the tests ([`Server`]: `pages.rs`, `sink.rs`, `social.rs`,
//! `probes.rs`, `otlp.rs` are handlers on it) and its HTTP/1.1 request reader: request
//! line, headers (names lower-cased) and a `content-length` body, on a kept-alive
//! connection.

#![allow(dead_code)] // Shared by tests and benches; each uses a part.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Request {
    pub method: String,
    /// With its query.
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// The next request on the connection; None when it is closed or broken.
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// An HTTP response of a test server.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A response with these headers (the content type among them).
    pub fn with_headers(
        status: u16,
        headers: Vec<(&str, String)>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            status,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn write_to(&self, mut out: &TcpStream) -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {} X\r\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)
    }
}

/// What a test server does with a request.
pub enum Reply {
    Send(Response),
    /// Close the connection without an answer (a request cut off on its way).
    Drop,
}

/// The one loopback test server: `handler` answers each request (it may block: every
/// connection has a thread of its own, kept alive across requests); stopped when dropped.
pub struct Server {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(
        read_timeout: Duration,
        handler: impl Fn(Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(read_timeout));
                    let Ok(read_half) = conn.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(read_half);
                    while let Some(req) = read_request(&mut reader) {
                        match handler(req) {
                            Reply::Send(res) => {
                                if res.write_to(&conn).is_err() {
                                    return;
                                }
                            }
                            Reply::Drop => return,
                        }
                    }
                });
            }
        });
        Server { addr, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect(&self.addr);
    }
}
