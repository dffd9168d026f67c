//! The JavaScript the engine evaluates in pages (function declarations called with
//! `Runtime.callFunctionOn`).

pub const WAIT_FOR_JS: &str = r#"(sel, state, timeoutMs) => new Promise((resolve) => {
  const check = () => {
    const el = document.querySelector(sel);
    if (state === 'attached') return !!el;
    const visible = !!el && !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
      && getComputedStyle(el).visibility !== 'hidden';
    return state === 'visible' ? visible : !visible;
  };
  if (check()) return resolve(true);
  let obs, iv, to;
  const done = (v) => { if (obs) obs.disconnect(); clearInterval(iv); clearTimeout(to); resolve(v); };
  obs = new MutationObserver(() => { if (check()) done(true); });
  obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  iv = setInterval(() => { if (check()) done(true); }, 100);
  to = setTimeout(() => done(false), timeoutMs);
})"#;

pub const EXTRACT_JS: &str = r#"(sel, attr, all) => {
  const value = (e) => attr ? e.getAttribute(attr) : (e.innerText !== undefined ? e.innerText : e.textContent).trim();
  if (all) return [...document.querySelectorAll(sel)].map(value);
  const e = document.querySelector(sel);
  return e ? { v: value(e) } : null;
}"#;

pub const CLEAR_JS: &str = r#"(sel) => { const e = document.querySelector(sel); if (!e) return false;
  e.focus(); if ('value' in e) { e.value = ''; e.dispatchEvent(new Event('input', { bubbles: true })); } return true; }"#;

pub const SELECT_JS: &str = r#"(sel, value) => { const e = document.querySelector(sel); if (!e) return 'missing';
  if (![...e.options].some(o => o.value === value)) return 'no option';
  e.value = value; e.dispatchEvent(new Event('input', { bubbles: true }));
  e.dispatchEvent(new Event('change', { bubbles: true })); return 'ok'; }"#;

pub const TEXT_JS: &str = r#"(sel) => { const e = document.querySelector(sel); return e ? (e.innerText || e.textContent || '') : null; }"#;
