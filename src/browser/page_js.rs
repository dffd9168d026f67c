//! The JavaScript the engine evaluates in pages (function declarations called with
//! `Runtime.callFunctionOn` in our isolated world, `world.rs`: the page's own scripts see
//! none of it). Every function takes the loop scope first: a list of
//! `[selector, index]`, outermost loop first; a selector starting with `:scope` is resolved
//! inside the current loop item (none, when the item is not on the page now), any other in
//! the document.

/// Declares `root` (the current loop item, or the document), `q(sel)` and `qa(sel)`.
macro_rules! with_scope {
    ($params:literal, $body:literal) => {
        concat!(
            "(scope, ",
            $params,
            ") => { const root = (() => { let r = document; for (const [s, i] of scope) { ",
            "const list = (s.startsWith(':scope') && r !== document ? r : document).querySelectorAll(s); ",
            "r = list[i]; if (!r) return null; } return r; })(); ",
            "const base = (s) => !s.startsWith(':scope') ? document : root; ",
            "const q = (s) => { const b = base(s); return b ? b.querySelector(s) : null; }; ",
            "const qa = (s) => { const b = base(s); return b ? [...b.querySelectorAll(s)] : []; }; ",
            $body,
            " }"
        )
    };
}

pub const WAIT_FOR_JS: &str = with_scope!(
    "sel, state, timeoutMs",
    r#"return new Promise((resolve) => {
  const check = () => {
    const el = q(sel);
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
});"#
);

pub const EXTRACT_JS: &str = with_scope!(
    "sel, attr, all",
    r#"const value = (e) => attr ? e.getAttribute(attr) : (e.innerText !== undefined ? e.innerText : e.textContent).trim();
  if (all) return qa(sel).map(value);
  const e = q(sel);
  return e ? { v: value(e) } : null;"#
);

/// Where the element is in the viewport, and the viewport's size (without scrollbars).
pub const RECT_JS: &str = with_scope!(
    "sel",
    r#"const e = q(sel); if (!e) return null;
  const r = e.getBoundingClientRect(), d = document.documentElement;
  return { x: r.left, y: r.top, w: r.width, h: r.height, vw: d.clientWidth || innerWidth, vh: d.clientHeight || innerHeight };"#
);

pub const SCROLL_INTO_VIEW_JS: &str = with_scope!(
    "sel",
    r#"const e = q(sel); if (!e) return false; e.scrollIntoView({ block: 'center', inline: 'center' }); return true;"#
);

/// Focuses a `<select>` and says which option is chosen and which is wanted (the engine
/// then moves there with the arrow keys, as a person does: the page sees trusted events).
pub const SELECT_JS: &str = with_scope!(
    "sel, value",
    r#"const e = q(sel); if (!e) return 'missing';
  const to = [...e.options].findIndex(o => o.value === value);
  if (to < 0) return 'no option';
  if (e.value === value) return 'ok';
  e.focus(); return { from: e.selectedIndex, to };"#
);

/// The value of a form field.
pub const VALUE_JS: &str = with_scope!("sel", r#"const e = q(sel); return e ? e.value : null;"#);

/// Sets a `<select>` directly (with input and change events) when the keys could not reach
/// the option (a disabled one in the way).
pub const SET_VALUE_JS: &str = with_scope!(
    "sel, value",
    r#"const e = q(sel); if (!e) return false;
  e.value = value; e.dispatchEvent(new Event('input', { bubbles: true }));
  e.dispatchEvent(new Event('change', { bubbles: true })); return true;"#
);

pub const TEXT_JS: &str = with_scope!(
    "sel",
    r#"const e = q(sel); return e ? (e.innerText || e.textContent || '') : null;"#
);

pub const EXISTS_JS: &str = with_scope!("sel", r#"return q(sel) !== null;"#);

pub const VISIBLE_JS: &str = with_scope!(
    "sel",
    r#"const el = q(sel); return !!el && !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
      && getComputedStyle(el).visibility !== 'hidden';"#
);

/// The items of a loop at its start: text and attributes of the first `max` matches.
pub const ITEMS_JS: &str = with_scope!(
    "sel, max",
    r#"if (base(sel) === null) return null;
  return qa(sel).slice(0, max).map((e) => ({
    text: (e.innerText !== undefined ? e.innerText : e.textContent || '').trim(),
    attr: Object.fromEntries([...e.attributes].map((a) => [a.name, a.value])),
  }));"#
);
