//! An HTTP receiver on 127.0.0.1 that the `http` job kind and webhook channels call: it counts
//! requests per `Idempotency-Key` (one key per job fire or notification), keeps every request's
//! headers and body, and can answer with a chosen status, fail the first N calls, or hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Reply, Request, Response, Server};

/// One request as received (header names lower-cased).
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    by_key: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<Received>>,
    fail_first: AtomicUsize,
    total: AtomicUsize,
    status: AtomicU16,
    hang: AtomicBool,
    /// Requests that hung are dropped unanswered and uncounted when the hang ends (as if
    /// they never reached the receiver).
    lose_hung: AtomicBool,
    /// Requests hanging now.
    hanging: AtomicUsize,
    stop: AtomicBool,
}

pub struct Sink {
    pub url: String,
    state: Arc<State>,
    _server: Server,
}

impl Sink {
    pub fn start() -> Self {
        let state = Arc::new(State::default());
        state.status.store(200, Ordering::SeqCst);
        let s = state.clone();
        let server = Server::start(Duration::from_secs(10), move |req| answer(req, &s));
        Self {
            url: server.url("/hook"),
            state,
            _server: server,
        }
    }

    /// Answers every later request with `status`.
    pub fn respond_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Answers the next `n` requests with 503, then with the chosen status.
    pub fn fail_first(&self, n: usize) {
        self.state.fail_first.store(n, Ordering::SeqCst);
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Never answers later requests (until `unhang`).
    pub fn hang(&self, on: bool) {
        self.state.hang.store(on, Ordering::SeqCst);
    }

    /// Later requests hang unanswered; when the hang ends they are dropped, uncounted (they
    /// stand for requests cut off before they reached the receiver).
    pub fn black_hole(&self, on: bool) {
        if on {
            self.state.lose_hung.store(true, Ordering::SeqCst);
        }
        self.state.hang.store(on, Ordering::SeqCst);
    }

    /// Requests hanging now.
    pub fn hanging(&self) -> usize {
        self.state.hanging.load(Ordering::SeqCst)
    }

    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Requests per Idempotency-Key.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state.by_key.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Hung requests end (the server itself stops when dropped).
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.hang.store(false, Ordering::SeqCst);
    }
}

fn answer(req: Request, s: &State) -> Reply {
    let Request { headers, body, .. } = req;
    let key = headers.get("idempotency-key").cloned();
    let mut hung = false;
    if s.hang.load(Ordering::SeqCst) {
        s.hanging.fetch_add(1, Ordering::SeqCst);
        hung = true;
    }
    while s.hang.load(Ordering::SeqCst) && !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if hung {
        s.hanging.fetch_sub(1, Ordering::SeqCst);
        if s.lose_hung.load(Ordering::SeqCst) {
            return Reply::Drop;
        }
    }
    s.total.fetch_add(1, Ordering::SeqCst);
    if let Some(k) = key {
        *s.by_key.lock().unwrap().entry(k).or_default() += 1;
    }
    s.requests.lock().unwrap().push(Received { headers, body });
    let failing = s
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        503
    } else {
        s.status.load(Ordering::SeqCst)
    };
    Reply::Send(Response::new(status, "text/plain", "ok"))
}
