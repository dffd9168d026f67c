//! Pages for browser tests, served on 127.0.0.1: content that appears late, content loaded
//! by XHR, a form with every input kind, a login that sets a cookie, and a slow page.

#![allow(dead_code)] // Shared by tests and benches; each uses a part.
use std::time::{Duration, Instant};

use super::http::{Reply, Request, Response, Server};

pub struct Pages {
    pub base: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _server: Server,
}

impl Pages {
    pub fn start() -> Self {
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, d) = (hits.clone(), down.clone());
        let server = Server::start(Duration::from_secs(30), move |req| {
            Reply::Send(answer(req, &h, &d))
        });
        Self {
            base: format!("http://{}", server.addr),
            hits,
            down,
            _server: server,
        }
    }

    /// `/flaky` answers an error page while down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Paths requested so far.
    pub fn hits(&self) -> Vec<String> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// When `path` was requested, in order.
    pub fn hit_times(&self, path: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn html(body: &str) -> String {
    format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>t</title></head><body>{body}</body></html>")
}

fn answer(
    req: Request,
    hits: &std::sync::Mutex<Vec<(String, Instant)>>,
    down: &std::sync::atomic::AtomicBool,
) -> Response {
    let (method, path, body) = (req.method, req.path, req.body);
    let cookie = req.headers.get("cookie").cloned().unwrap_or_default();
    hits.lock().unwrap().push((path.clone(), Instant::now()));
    let form: std::collections::HashMap<String, String> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let mut headers = vec![("content-type", "text/html; charset=utf-8".to_string())];
    let (status, text) = match (method.as_str(), path.split('?').next().unwrap_or("/")) {
        (_, "/delayed") => (
            200,
            html(
                r#"<h1>Delayed</h1><script>
            setTimeout(() => { const d = document.createElement('div'); d.id = 'late'; d.textContent = 'ready at last'; document.body.appendChild(d); }, 400);
            </script>"#,
            ),
        ),
        (_, "/later") => (
            200,
            html(
                r#"<h1>Later</h1><script>
            setTimeout(() => { const d = document.createElement('div'); d.id = 'done'; d.textContent = 'done'; document.body.appendChild(d); }, 2500);
            </script>"#,
            ),
        ),
        (_, "/xhr") => (
            200,
            html(
                r#"<div id="data">loading</div><script>
            fetch('/data').then(r => r.text()).then(t => { document.getElementById('data').textContent = t; });
            </script>"#,
            ),
        ),
        (_, "/data") => {
            std::thread::sleep(Duration::from_millis(300));
            headers[0].1 = "text/plain".into();
            (200, "payload from xhr".to_string())
        }
        (_, "/form") => (
            200,
            html(
                r#"
            <input id="name"><select id="color"><option value="r">red</option><option value="g">green</option></select>
            <button id="go" onclick="document.getElementById('out').textContent = document.getElementById('name').value + '|' + document.getElementById('color').value">go</button>
            <div id="out"></div>
            <ul><li class="job">Engineer</li><li class="job">Designer</li></ul>
            <a id="link" href="/elsewhere">x</a>
            <i id="nav-ms" hidden></i><script>
            document.addEventListener('DOMContentLoaded', () => {
              document.getElementById('nav-ms').textContent = performance.now().toFixed(1);
            });</script>"#,
            ),
        ),
        ("GET", "/login") => (
            200,
            html(
                r#"<form method="post" action="/login">
            <input id="user" name="user"><input id="pass" name="pass" type="password">
            <button id="submit" type="submit">Log in</button></form>"#,
            ),
        ),
        ("POST", "/login") => {
            headers.push((
                "set-cookie",
                format!(
                    "session={}; Path=/; Max-Age=86400; HttpOnly",
                    form.get("user").cloned().unwrap_or_default()
                ),
            ));
            // A careless site that echoes what was typed: the output must not show it.
            (
                200,
                html(&format!(
                    "<h1 id=\"welcome\">Welcome {}</h1><p id=\"echo\">you typed {}</p>",
                    form.get("user").cloned().unwrap_or_default(),
                    form.get("pass").cloned().unwrap_or_default()
                )),
            )
        }
        (_, "/account") => {
            let user = cookie
                .split(';')
                .filter_map(|c| c.trim().strip_prefix("session="))
                .next()
                .map(str::to_string);
            match user {
                Some(u) => (200, html(&format!("<h1 id=\"who\">Signed in as {u}</h1>"))),
                None => (200, html("<h1 id=\"who\">Please log in</h1>")),
            }
        }
        (_, "/flaky") => {
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                (503, html("<h1 id=\"state\">down for maintenance</h1>"))
            } else {
                (200, html("<h1 id=\"state\">all ok</h1>"))
            }
        }
        (_, "/robots.txt") => (
            200,
            "User-agent: *\nDisallow: /private\nAllow: /private/ok\n".to_string(),
        ),
        (_, "/private") => (200, html("<p id=\"secret\">private</p>")),
        (_, "/slow") => {
            std::thread::sleep(Duration::from_secs(5));
            (200, html("slow"))
        }
        _ => (404, html("not found")),
    };
    Response::with_headers(status, headers, text)
}

fn decode(v: &str) -> String {
    let v = v.replace('+', " ");
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
