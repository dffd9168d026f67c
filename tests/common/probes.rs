//! Probe pages for anti-detection, served on 127.0.0.1 (a secure context, so client hints
//! and service workers exist): `/probe` reads what today's open-source detectors read — a
//! CDP `Runtime` domain noticed from inside the page, main-world DOM calls we did not make,
//! globals we left, `navigator.webdriver` in every frame and worker kind, one identity in
//! page, workers and request headers, how clicks and keys arrive, the window, and whether
//! anything looks patched — and writes it as JSON into `#report` when `#finish` is clicked.
//! Every request's headers are kept (`requests`).

#![allow(dead_code)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Reply, Request, Response, Server};

/// Each request's path and headers, in order.
type Log = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

pub struct Probes {
    pub base: String,
    requests: Log,
    _server: Server,
}

impl Probes {
    pub fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        let server = Server::start(Duration::from_secs(60), move |req| {
            Reply::Send(answer(req, &r))
        });
        Self {
            base: format!("http://{}", server.addr),
            requests,
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The headers of every request for `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

fn answer(req: Request, requests: &Log) -> Response {
    let path = req.path.split('?').next().unwrap_or("/").to_string();
    requests.lock().unwrap().push((path.clone(), req.headers));
    let (ctype, body) = match path.as_str() {
        "/probe" => ("text/html; charset=utf-8", PROBE.to_string()),
        // What a page sees at a glance: webdriver and the user agent.
        "/glance" => ("text/html; charset=utf-8", "<!doctype html><p id=\"wd\"></p><p id=\"ua\"></p><script>wd.textContent = String(navigator.webdriver); ua.textContent = navigator.userAgent;</script>".to_string()),
        "/worker.js" => ("text/javascript", format!("{WORKER}\nonmessage = async () => postMessage(await report());")),
        "/shared.js" => ("text/javascript", format!("{WORKER}\nonconnect = (e) => {{ const port = e.ports[0]; port.onmessage = async () => port.postMessage(await report()); }};")),
        "/sw.js" => ("text/javascript", format!("{WORKER}\nself.addEventListener('install', () => self.skipWaiting());\nself.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));\nself.onmessage = async (e) => e.ports[0].postMessage(await report());")),
        _ => ("text/plain", "not found".to_string()),
    };
    let status = if ctype == "text/plain" { 404 } else { 200 };
    // Ask for the high-entropy hints on the wire too, as sites that use them do.
    Response::new(status, ctype, body)
        .header(
            "accept-ch",
            "Sec-CH-UA-Full-Version-List, Sec-CH-UA-Arch, Sec-CH-UA-Platform-Version",
        )
        .header("cache-control", "no-store")
}

/// What every worker kind reports about itself.
const WORKER: &str = r#"
const report = async () => ({
  ua: navigator.userAgent,
  has_webdriver: 'webdriver' in navigator,
  webdriver: navigator.webdriver === undefined ? 'undefined' : navigator.webdriver,
  platform: navigator.platform,
  languages: navigator.languages,
  brands: navigator.userAgentData ? navigator.userAgentData.brands : null,
  he: navigator.userAgentData ? await navigator.userAgentData.getHighEntropyValues(['architecture', 'bitness', 'model', 'platformVersion', 'fullVersionList']) : null,
});"#;

const PROBE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>Probe page</title>
<script>
(() => {
  const P = { calls: {}, events: [], runtime: false };
  // 1. A CDP Runtime domain serializes what the page logs for the debugger: it formats an
  // error's stack (reading `Error.prepareStackTrace`; older versions read `stack` itself).
  // (Its `name` and `message` are read by a browser without any debugger too: no bait.)
  const bait = () => {
    const e = new Error('probe');
    Object.defineProperty(e, 'stack', { configurable: false, enumerable: false, get() { P.runtime = true; P.bait_stack = true; return ''; } });
    return e;
  };
  let pst;
  Object.defineProperty(Error, 'prepareStackTrace', { configurable: true, get() { P.runtime = true; P.bait_pst = (P.bait_pst || 0) + 1; return pst; }, set(v) { pst = v; } });
  const log = console.debug.bind(console);
  const both = () => { log(bait()); log(new Error('probe')); };
  both(); setInterval(both, 100);
  // 2. Every DOM lookup and scroll helper in the page's world is counted from now on.
  const byId = document.getElementById.bind(document);
  const count = (label) => { P.calls[label] = (P.calls[label] || 0) + 1; };
  const wrap = (proto, name, label) => {
    const orig = proto[name];
    proto[name] = function (...a) { count(label); return orig.apply(this, a); };
  };
  wrap(Document.prototype, 'querySelector', 'document.querySelector');
  wrap(Document.prototype, 'querySelectorAll', 'document.querySelectorAll');
  wrap(Element.prototype, 'querySelector', 'element.querySelector');
  wrap(Element.prototype, 'querySelectorAll', 'element.querySelectorAll');
  wrap(Document.prototype, 'getElementById', 'getElementById');
  wrap(Document.prototype, 'getElementsByClassName', 'getElementsByClassName');
  wrap(Element.prototype, 'getElementsByClassName', 'element.getElementsByClassName');
  wrap(Element.prototype, 'scrollIntoView', 'scrollIntoView');
  wrap(Element.prototype, 'scrollIntoViewIfNeeded', 'scrollIntoViewIfNeeded');
  wrap(Element.prototype, 'getBoundingClientRect', 'getBoundingClientRect');
  const IO = window.IntersectionObserver, MO = window.MutationObserver;
  window.IntersectionObserver = function (...a) { count('IntersectionObserver'); return new IO(...a); };
  window.MutationObserver = function (...a) { count('MutationObserver'); return new MO(...a); };
  // 5. How input arrives.
  for (const t of ['mousemove', 'mousedown', 'mouseup', 'click', 'wheel', 'keydown', 'keyup', 'input', 'change', 'touchstart', 'focus']) {
    document.addEventListener(t, (ev) => P.events.push({
      t, ts: performance.now(), trusted: ev.isTrusted, target: ev.target && ev.target.id || null,
      x: ev.clientX, y: ev.clientY, sx: ev.screenX, sy: ev.screenY, px: ev.pageX, py: ev.pageY, scx: scrollX, scy: scrollY,
    }), true);
  }
  // Workers of every kind, and iframes of every kind.
  const ask = (post, on) => new Promise((resolve) => { on((d) => resolve(d)); post(); setTimeout(() => resolve('no answer'), 5000); });
  const dedicated = new Worker('/worker.js');
  P.dedicated = ask(() => dedicated.postMessage('q'), (f) => { dedicated.onmessage = (e) => f(e.data); });
  const shared = new SharedWorker('/shared.js');
  P.shared = ask(() => shared.port.postMessage('q'), (f) => { shared.port.onmessage = (e) => f(e.data); });
  P.service = navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready).then((reg) => {
    const ch = new MessageChannel();
    return ask(() => reg.active.postMessage('q', [ch.port2]), (f) => { ch.port1.onmessage = (e) => f(e.data); });
  }).catch((e) => 'error: ' + e);
  navigator.serviceWorker.getRegistration().then((r) => { P.sw_state = r ? [r.installing, r.waiting, r.active].map((w) => w && w.state) : 'none'; });
  P.baseline = new Set(Object.getOwnPropertyNames(window));
  P.byId = byId;
  Object.defineProperty(window, '__probe', { value: P, enumerable: false });
  P.baseline.add('__probe');
})();
</script></head>
<body style="margin:0">
<h1 id="title">Probe page</h1>
<iframe id="srcdoc" srcdoc="<p>inside</p>"></iframe>
<input id="name" value="old"> <select id="color"><option value="r">red</option><option value="g">green</option><option value="b">blue</option></select>
<ul id="list"><li class="item"><span class="label">one</span></li><li class="item"><span class="label">two</span></li></ul>
<div id="slot"></div>
<div style="height: 2600px"></div>
<button id="far">far down</button>
<div style="height: 400px"></div>
<button id="finish">finish</button>
<pre id="report"></pre>
<script>
(() => {
  const P = window.__probe, byId = P.byId;
  setTimeout(() => { const d = document.createElement('div'); d.id = 'late'; d.textContent = 'late'; byId('slot').appendChild(d); }, 300);
  const blank = document.createElement('iframe'); document.body.appendChild(blank);
  const native = (f) => typeof f === 'function' && /\{\s*\[native code\]\s*\}$/.test(Function.prototype.toString.call(f));
  const getter = (proto, name) => { const d = Object.getOwnPropertyDescriptor(proto, name); return d && d.get; };
  const frame = (w) => ({ webdriver: w.navigator.webdriver, ua: w.navigator.userAgent });
  const within = (p) => Promise.race([p, new Promise((r) => setTimeout(() => r('no answer'), 5000))]);
  byId('finish').addEventListener('click', async () => { try { await finish(); } catch (e) { byId('report').textContent = JSON.stringify({ error: String(e && e.stack || e) }); } });
  const finish = async () => {
    await new Promise((r) => setTimeout(r, 250));
    const perm = (await navigator.permissions.query({ name: 'notifications' })).state;
    const he = await navigator.userAgentData.getHighEntropyValues(['architecture', 'bitness', 'model', 'platformVersion', 'fullVersionList']);
    const evs = P.events;
    const clicks = evs.filter((e) => e.t === 'mousedown').map((down) => {
      const i = evs.indexOf(down);
      const prevDown = evs.slice(0, i).map((e) => e.t).lastIndexOf('mouseup');
      const moves = evs.slice(prevDown + 1, i).filter((e) => e.t === 'mousemove');
      const up = evs.slice(i).find((e) => e.t === 'mouseup');
      return {
        target: down.target, moves: moves.length,
        move_ms: moves.length ? down.ts - moves[0].ts : 0,
        press_ms: up ? up.ts - down.ts : null,
        screen_dx: down.sx - down.x, screen_dy: down.sy - down.y,
        page_equals_client: down.px === down.x + down.scx && down.py === down.y + down.scy,
      };
    });
    const r = {
      runtime: P.runtime, baits: { stack: !!P.bait_stack, prepare_stack_trace: P.bait_pst || 0 }, sw_state: await navigator.serviceWorker.getRegistration().then((r) => r ? [r.installing, r.waiting, r.active].map((w) => w && w.state) : 'none'),
      calls: P.calls,
      new_globals: Object.getOwnPropertyNames(window).filter((k) => !P.baseline.has(k)),
      webdriver: { main: navigator.webdriver, has: 'webdriver' in navigator, srcdoc: frame(byId('srcdoc').contentWindow), blank: frame(blank.contentWindow) },
      automation_flag: Object.getOwnPropertyNames(window).some((k) => k.startsWith('cdc_') || k.startsWith('__webdriver')),
      ua: navigator.userAgent, platform: navigator.platform, languages: navigator.languages,
      brands: navigator.userAgentData.brands, he,
      workers: { dedicated: await within(P.dedicated), shared: await within(P.shared), service: await within(P.service) },
      untrusted: evs.filter((e) => !e.trusted).map((e) => e.t),
      counts: evs.reduce((m, e) => { m[e.t] = (m[e.t] || 0) + 1; return m; }, {}),
      clicks,
      touch: { max_touch_points: navigator.maxTouchPoints, ontouchstart: 'ontouchstart' in window, pointer_fine: matchMedia('(pointer: fine)').matches, hover: matchMedia('(hover: hover)').matches },
      window: { inner: [innerWidth, innerHeight], outer: [outerWidth, outerHeight], screen: [screen.width, screen.height], avail: [screen.availWidth, screen.availHeight], at: [screenX, screenY] },
      native: {
        webdriver: native(getter(Navigator.prototype, 'webdriver')), user_agent: native(getter(Navigator.prototype, 'userAgent')),
        languages: native(getter(Navigator.prototype, 'languages')), plugins: native(getter(Navigator.prototype, 'plugins')),
        platform: native(getter(Navigator.prototype, 'platform')), permissions_query: native(navigator.permissions.query),
        load_times: native(window.chrome && window.chrome.loadTimes), csi: native(window.chrome && window.chrome.csi),
        to_string: native(Function.prototype.toString),
      },
      chrome: { runtime: typeof (window.chrome && window.chrome.runtime), keys: window.chrome ? Object.keys(window.chrome) : null },
      notification: Notification.permission, permission: perm,
      plugins: navigator.plugins.length, mime_types: navigator.mimeTypes.length, pdf_viewer: navigator.pdfViewerEnabled,
      name_value: byId('name').value, color: byId('color').value,
      visibility: document.visibilityState,
    };
    byId('report').textContent = JSON.stringify(r);
  };
})();
</script></body></html>"#;
