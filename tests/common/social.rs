//! A small fake social site for browser-script tests, served on 127.0.0.1: a login form
//! (cookie), `/birthdays` listing contacts (those whose birthday is the site's "today", a
//! date the test sets, are marked), a chat dialog per contact whose "send" records the
//! message server-side (and can be held, to kill overseer mid-send), and `/applications`
//! with statuses the test changes.

#![allow(dead_code)]
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::http::{Reply, Request, Response, Server};

#[derive(Clone)]
pub struct Contact {
    pub id: String,
    pub name: String,
    /// `MM-DD`
    pub birthday: String,
}

#[derive(Default)]
struct State {
    contacts: Vec<Contact>,
    today: String,
    /// (contact id, text), in the order received.
    messages: Vec<(String, String)>,
    /// While true, a send is recorded and then not answered.
    hold: bool,
    /// (id, company, status)
    applications: Vec<(String, String, String)>,
}

#[derive(Clone)]
pub struct Social {
    pub base: String,
    state: Arc<(Mutex<State>, Condvar)>,
    _server: Arc<Server>,
}

impl Social {
    pub fn start(contacts: Vec<Contact>, today: &str) -> Self {
        let state = Arc::new((
            Mutex::new(State {
                contacts,
                today: today.to_string(),
                ..State::default()
            }),
            Condvar::new(),
        ));
        let s = state.clone();
        let server = Server::start(Duration::from_secs(60), move |req| {
            Reply::Send(answer(req, &s))
        });
        Self {
            base: format!("http://{}", server.addr),
            state,
            _server: Arc::new(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn messages(&self) -> Vec<(String, String)> {
        self.state.0.lock().unwrap().messages.clone()
    }

    /// Sends are recorded but not answered while held.
    pub fn hold_sends(&self, hold: bool) {
        self.state.0.lock().unwrap().hold = hold;
        self.state.1.notify_all();
    }

    pub fn set_applications(&self, apps: &[(&str, &str, &str)]) {
        self.state.0.lock().unwrap().applications = apps
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
    }
}

fn html(body: &str) -> String {
    format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>social</title></head><body>{body}</body></html>")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

const CHAT_JS: &str = r#"<dialog id="chat"><textarea id="text"></textarea><button id="send">Send</button></dialog>
<script>
let to = null;
document.querySelectorAll('.message').forEach((b) => b.addEventListener('click', () => {
  to = b.closest('li').dataset.id;
  document.getElementById('text').value = '';
  document.getElementById('chat').showModal();
}));
document.getElementById('send').addEventListener('click', async () => {
  const r = await fetch('/send', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to, text: document.getElementById('text').value }) });
  if (r.ok) {
    document.getElementById('chat').close();
    const s = document.createElement('span'); s.id = 'sent-' + to; s.textContent = 'sent';
    document.body.appendChild(s);
  }
});
</script>"#;

fn answer(req: Request, state: &Arc<(Mutex<State>, Condvar)>) -> Response {
    let cookie = req.headers.get("cookie").cloned().unwrap_or_default();
    let user = cookie
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("session="))
        .next()
        .map(str::to_string);
    let form: HashMap<String, String> = String::from_utf8_lossy(&req.body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace('+', " ")))
        .collect();
    let mut headers = vec![("content-type", "text/html; charset=utf-8".to_string())];
    let path = req.path.split('?').next().unwrap_or("/").to_string();
    let (status, text) = match (req.method.as_str(), path.as_str()) {
        ("GET", "/login") => (
            200,
            html(
                r#"<form method="post" action="/login"><input id="user" name="user">
                <input id="pass" name="pass" type="password"><button id="submit" type="submit">Log in</button></form>"#,
            ),
        ),
        ("POST", "/login") => {
            let u = form.get("user").cloned().unwrap_or_default();
            headers.push((
                "set-cookie",
                format!("session={u}; Path=/; Max-Age=86400; HttpOnly"),
            ));
            (
                200,
                html(&format!("<h1 id=\"welcome\">Welcome {}</h1>", escape(&u))),
            )
        }
        (_, "/birthdays") if user.is_none() => (
            200,
            html(r#"<p id="login-needed">Please <a href="/login">log in</a>.</p>"#),
        ),
        (_, "/birthdays") => {
            let s = state.0.lock().unwrap();
            let items: String = s
                .contacts
                .iter()
                .map(|c| {
                    let class = if c.birthday == s.today[5..] {
                        "contact birthday"
                    } else {
                        "contact"
                    };
                    format!(
                        "<li class=\"{class}\" data-id=\"{}\"><span class=\"name\">{}</span> <button class=\"message\">Message</button></li>",
                        c.id,
                        escape(&c.name)
                    )
                })
                .collect();
            (
                200,
                html(&format!(
                    "<h1>Birthdays on {}</h1><ul id=\"contacts\">{items}</ul>{CHAT_JS}",
                    s.today
                )),
            )
        }
        ("POST", "/send") if user.is_some() => {
            let v: serde_json::Value =
                serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
            let (lock, cvar) = &**state;
            let mut s = lock.lock().unwrap();
            s.messages.push((
                v["to"].as_str().unwrap_or("").to_string(),
                v["text"].as_str().unwrap_or("").to_string(),
            ));
            cvar.notify_all();
            // Held: recorded, but no answer until released (or the client is gone).
            while s.hold {
                let (g, _) = cvar.wait_timeout(s, Duration::from_millis(200)).unwrap();
                s = g;
            }
            headers[0].1 = "application/json".into();
            (200, "{\"ok\": true}".to_string())
        }
        (_, p) if p.starts_with("/applications/") => {
            let id = &p["/applications/".len()..];
            let s = state.0.lock().unwrap();
            match s.applications.iter().find(|(a, _, _)| a == id) {
                Some((_, company, status)) => (
                    200,
                    html(&format!(
                        "<h1 id=\"company\">{}</h1><p id=\"detail\">{} since Monday</p><a id=\"back\" href=\"/applications\">back</a>",
                        escape(company),
                        escape(status)
                    )),
                ),
                None => (404, html("<h1>no such application</h1>")),
            }
        }
        (_, "/applications") => {
            let s = state.0.lock().unwrap();
            let items: String = s
                .applications
                .iter()
                .map(|(id, company, status)| {
                    format!(
                        "<li class=\"application\" data-id=\"{id}\" data-company=\"{}\"><span class=\"status\">{}</span></li>",
                        escape(company),
                        escape(status)
                    )
                })
                .collect();
            (200, html(&format!("<ul>{items}</ul>")))
        }
        _ => (404, html("<h1>not found</h1>")),
    };
    Response::with_headers(status, headers, text)
}
