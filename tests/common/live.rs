//! A client of the live view's documented protocol (docs/LIVE.md), as a script would write
//! it: the event stream read line by line, input posted as JSON. No dashboard involved.

#![allow(dead_code)]
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TestApp;

/// A live view's events as they arrive: (event name, data).
pub struct Follower {
    rx: mpsc::Receiver<(String, Value)>,
    /// Events read so far that no wait has taken.
    pub seen: Vec<(String, Value)>,
}

impl Follower {
    /// Follows view `id` with `token`. Dropping it closes the stream (the page closed).
    pub fn start(o: &TestApp, id: &str, token: &str) -> Follower {
        let url = o.url(&format!("/api/v1/browser/live/{id}/events"));
        let res = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build()
            .get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(res.content_type(), "text/event-stream");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(res.into_reader());
            let (mut name, mut data) = (String::new(), String::new());
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if let Some(n) = l.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data.push_str(d);
                } else if l.is_empty() && !name.is_empty() {
                    let v = serde_json::from_str(&data).unwrap_or(Value::Null);
                    if tx.send((std::mem::take(&mut name), v)).is_err() {
                        return;
                    }
                    data.clear();
                } else if l.starts_with(':') && tx.send((String::new(), Value::Null)).is_err() {
                    // A comment (keep-alive): the follower is gone, so is the stream.
                    return;
                }
            }
        });
        Follower {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event `pred` accepts; returns its data.
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str, &Value) -> bool,
    ) -> Value {
        if let Some(i) = self.seen.iter().position(|(n, v)| pred(n, v)) {
            return self.seen.drain(..=i).next_back().unwrap().1;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((name, v)) if !name.is_empty() && pred(&name, &v) => return v,
                Ok((name, v)) => {
                    if !name.is_empty() && name != "frame" {
                        self.seen.push((name, v));
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; events seen: {:?}", self.seen),
            }
        }
    }

    /// Waits for the address shown to end with `path`.
    pub fn wait_at(&mut self, path: &str, timeout: Duration) -> Value {
        self.wait(&format!("the view at {path}"), timeout, |n, v| {
            n == "state" && v["url"].as_str().is_some_and(|u| u.ends_with(path))
        })
    }
}

/// Sends inputs (204 expected).
pub fn input(o: &TestApp, id: &str, token: &str, events: Vec<Value>) {
    let a = o.post(
        &format!("/api/v1/browser/live/{id}/input"),
        Some(token),
        Some(&json!({ "events": events }).to_string()),
    );
    assert_eq!(a.status, 204, "{}", a.text);
}

pub fn click((x, y): (f64, f64)) -> Vec<Value> {
    vec![
        json!({"type": "mouse", "action": "move", "x": x, "y": y}),
        json!({"type": "mouse", "action": "down", "x": x, "y": y, "button": "left", "buttons": 1, "clicks": 1}),
        json!({"type": "mouse", "action": "up", "x": x, "y": y, "button": "left", "clicks": 1}),
    ]
}

/// Each character as a key press, as a keyboard sends it.
pub fn typing(text: &str) -> Vec<Value> {
    text.chars()
        .flat_map(|c| {
            let k = c.to_string();
            [
                json!({"type": "key", "action": "down", "key": k}),
                json!({"type": "key", "action": "up", "key": k}),
            ]
        })
        .collect()
}

pub fn press(key: &str) -> Vec<Value> {
    vec![
        json!({"type": "key", "action": "down", "key": key}),
        json!({"type": "key", "action": "up", "key": key}),
    ]
}

impl Follower {
    /// Forgets every event that has arrived (before an input whose effect is timed).
    pub fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.seen.clear();
    }

    /// How many frames arrive within `d`.
    pub fn frames_within(&mut self, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        let mut n = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok((name, _)) if name == "frame" => n += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        n
    }

    /// Waits until no frame has come for `quiet` (the page is still), up to `timeout`.
    pub fn settle(&mut self, quiet: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.frames_within(quiet) == 0 {
                return;
            }
        }
        panic!("the page never stopped changing");
    }
}
