//! A test site whose login asks for a one-time code, served on 127.0.0.1: `/login` (user and
//! password) → `/code` (the code) → `/home`, which greets a logged-in visitor (a lasting
//! `sid` cookie) and sends anyone else to `/login`. It counts completed logins and keeps
//! every user agent and client hint it was sent, per path. The fields sit at fixed places
//! (documented by [`USER_AT`] and friends) so that a test can click them by coordinates, as
//! a person looking at the frame would.

#![allow(dead_code)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Reply, Request, Response, Server};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct-horse-7";
pub const CODE: &str = "493817";
/// Where to click: the middle of the user field, the password field, the code field (and
/// of the new-tab link on `/links`).
pub const USER_AT: (f64, f64) = (250.0, 120.0);
pub const PASSWORD_AT: (f64, f64) = (250.0, 180.0);
pub const CODE_AT: (f64, f64) = (250.0, 120.0);

#[derive(Default)]
struct State {
    logins: usize,
    sessions: Vec<String>,
    /// (path, user agent, sec-ch-ua) of every request.
    seen: Vec<(String, String, String)>,
}

#[derive(Clone)]
pub struct OtpSite {
    pub base: String,
    state: Arc<Mutex<State>>,
    _server: Arc<Server>,
}

const STYLE: &str = "<style>body{margin:0;font:16px sans-serif}input{position:absolute;left:100px;\
    width:300px;height:40px;box-sizing:border-box}</style>";

fn page(body: &str) -> Response {
    Response::new(
        200,
        "text/html; charset=utf-8",
        format!("<!doctype html><html><head><title>OTP site</title>{STYLE}</head><body>{body}</body></html>"),
    )
}

fn redirect(to: &str) -> Response {
    Response::with_headers(
        303,
        vec![
            ("location", to.to_string()),
            ("content-type", "text/plain".into()),
        ],
        "",
    )
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers.get("cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

impl OtpSite {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
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

    /// Logins completed (the right code entered).
    pub fn logins(&self) -> usize {
        self.state.lock().unwrap().logins
    }

    /// Requests for `path`: (user agent, sec-ch-ua) of each.
    pub fn seen(&self, path: &str) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        s.seen
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, ua, ch)| (ua.clone(), ch.clone()))
            .collect()
    }
}

fn answer(req: Request, state: &Mutex<State>) -> Response {
    let path = req.path.split('?').next().unwrap_or("").to_string();
    {
        let mut s = state.lock().unwrap();
        let h = |k: &str| req.headers.get(k).cloned().unwrap_or_default();
        s.seen.push((path.clone(), h("user-agent"), h("sec-ch-ua")));
    }
    match (req.method.as_str(), path.as_str()) {
        ("GET", "/login") => page(
            "<h1>Log in</h1><form method=post action=/login>\
             <input id=user name=user style='top:100px' autocomplete=off>\
             <input id=password name=password type=password style='top:160px'>\
             <button style='position:absolute;top:220px;left:100px'>Log in</button></form>",
        ),
        ("POST", "/login") => {
            let f = form(&req.body);
            if f.get("user").map(String::as_str) == Some(USER)
                && f.get("password").map(String::as_str) == Some(PASSWORD)
            {
                redirect("/code").header("set-cookie", "pending=1; Path=/; Max-Age=600")
            } else {
                redirect("/login?failed=1")
            }
        }
        ("GET", "/code") => page(
            "<h1 id=code-form>Enter the code we sent you</h1><form method=post action=/code>\
             <input id=code name=code inputmode=numeric style='top:100px' autocomplete=off></form>",
        ),
        ("POST", "/code") => {
            let f = form(&req.body);
            if cookie(&req, "pending").is_some() && f.get("code").map(String::as_str) == Some(CODE)
            {
                let mut s = state.lock().unwrap();
                s.logins += 1;
                let sid = format!("s{}", s.logins);
                s.sessions.push(sid.clone());
                redirect("/home").header("set-cookie", format!("sid={sid}; Path=/; Max-Age=86400"))
            } else {
                redirect("/code?wrong=1")
            }
        }
        // A link that opens in a new tab.
        ("GET", "/links") => page(
            "<h1>Links</h1><a id=open href=/login target=_blank style='position:absolute;top:100px;\
             left:100px;display:block;width:300px;height:40px'>open the login in a new tab</a>",
        ),
        ("GET", "/home") => {
            let known = cookie(&req, "sid")
                .is_some_and(|sid| state.lock().unwrap().sessions.contains(&sid));
            if known {
                page("<h1 id=welcome>Welcome alice</h1><p id=applications>3 applications</p>")
            } else {
                redirect("/login")
            }
        }
        _ => Response::new(404, "text/plain", "not found"),
    }
}
