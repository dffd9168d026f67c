//! Anti-detection (the `anti_detection` flag): what a page's scripts would read to tell an
//! automated browser, made to look like an ordinary Chrome. Installed with
//! `Page.addScriptToEvaluateOnNewDocument`, so it runs before any page script, in every frame.
//! Guardrails: no proxy rotation, no CAPTCHA solving, no external fingerprinting services.

/// The init script, for a profile whose locale is `locale` (like "en-US").
pub fn init_script(locale: &str) -> String {
    let lang = locale.split('-').next().unwrap_or("en");
    let languages = if lang == locale {
        format!("[{locale:?}]")
    } else {
        format!("[{locale:?}, {lang:?}]")
    };
    format!(
        r#"(() => {{
  try {{ delete Object.getPrototypeOf(navigator).webdriver; }} catch (e) {{}}
  if (!window.chrome) {{ Object.defineProperty(window, 'chrome', {{ value: {{}}, writable: true, configurable: true }}); }}
  const c = window.chrome;
  if (!c.runtime) c.runtime = {{ OnInstalledReason: {{}}, OnRestartRequiredReason: {{}}, PlatformArch: {{}}, PlatformOs: {{}}, connect() {{}}, sendMessage() {{}} }};
  if (!c.app) c.app = {{ isInstalled: false, InstallState: {{ DISABLED: 'disabled', INSTALLED: 'installed', NOT_INSTALLED: 'not_installed' }}, RunningState: {{ CANNOT_RUN: 'cannot_run', READY_TO_RUN: 'ready_to_run', RUNNING: 'running' }}, getDetails() {{ return null; }}, getIsInstalled() {{ return false; }} }};
  if (!c.csi) c.csi = function () {{ const t = performance.timing; return {{ onloadT: t.domContentLoadedEventEnd, startE: t.navigationStart, pageT: performance.now(), tran: 15 }}; }};
  if (!c.loadTimes) c.loadTimes = function () {{ const t = performance.timing; return {{ requestTime: t.navigationStart / 1000, startLoadTime: t.navigationStart / 1000, commitLoadTime: t.responseStart / 1000, finishDocumentLoadTime: t.domContentLoadedEventEnd / 1000, finishLoadTime: t.loadEventEnd / 1000, firstPaintTime: 0, firstPaintAfterLoadTime: 0, navigationType: 'Other', wasFetchedViaSpdy: false, wasNpnNegotiated: true, npnNegotiatedProtocol: 'h2', wasAlternateProtocolAvailable: false, connectionInfo: 'h2' }}; }};
  const langs = {languages};
  Object.defineProperty(Object.getPrototypeOf(navigator), 'languages', {{ get: () => langs.slice(), configurable: true }});
  if (!navigator.plugins || navigator.plugins.length === 0) {{
    const mime = {{ type: 'application/pdf', suffixes: 'pdf', description: 'Portable Document Format' }};
    const plugin = {{ name: 'PDF Viewer', filename: 'internal-pdf-viewer', description: 'Portable Document Format', length: 1, 0: mime, item(i) {{ return i === 0 ? mime : null; }}, namedItem(n) {{ return n === mime.type ? mime : null; }} }};
    mime.enabledPlugin = plugin;
    const list = (items) => Object.assign(Object.create(null), items, {{ length: items.length, item(i) {{ return items[i] || null; }}, namedItem(n) {{ return items.find(x => x.name === n || x.type === n) || null; }}, refresh() {{}} }});
    Object.defineProperty(Object.getPrototypeOf(navigator), 'plugins', {{ get: () => list([plugin]), configurable: true }});
    Object.defineProperty(Object.getPrototypeOf(navigator), 'mimeTypes', {{ get: () => list([mime]), configurable: true }});
  }}
  if (window.Notification && navigator.permissions && navigator.permissions.query) {{
    const query = navigator.permissions.query.bind(navigator.permissions);
    navigator.permissions.query = (p) => (p && p.name === 'notifications')
      ? Promise.resolve({{ state: Notification.permission === 'default' ? 'prompt' : Notification.permission, onchange: null }})
      : query(p);
  }}
}})();"#
    )
}

/// A user agent without "Headless" (Chromium's headless UA says `HeadlessChrome`).
pub fn plain_user_agent(ua: &str) -> String {
    ua.replace("HeadlessChrome", "Chrome")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_loses_headless() {
        assert_eq!(
            plain_user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/148.0.0.0 Safari/537.36"),
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36"
        );
    }

    #[test]
    fn languages_follow_the_locale() {
        assert!(init_script("de-DE").contains(r#"const langs = ["de-DE", "de"];"#));
        assert!(init_script("en").contains(r#"const langs = ["en"];"#));
    }
}
