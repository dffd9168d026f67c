// The dashboard's shared pieces: the session's facts from the shell's <meta> tags, el() (elements
// are made with it, never from HTML strings, so page data cannot become markup), the API
// client (the session cookie, and the CSRF token on every change), tables, pagers, notices,
// and the state pages share with the router.

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
export const CSRF = meta('csrf');
export const ROLE = meta('role');
export const MAY_CHANGE = ROLE === 'operator' || ROLE === 'admin';
export const IS_ADMIN = ROLE === 'admin';

/// What pages and the router share: whether the user is editing (a refresh would throw
/// their input away), how to re-render the current page (set by the router), and what to
/// close when the page is left (a live view's stream).
export const state = { editing: false, refresh: () => {}, leave: null };

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch('/api/v1' + path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { location.href = '/ui/login'; throw new Error('logged out'); }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) {
    const err = new Error((data && data.error && data.error.message) || r.statusText);
    err.status = r.status;
    err.fields = (data && data.error && data.error.fields) || [];
    throw err;
  }
  return data;
}

export function when(t) { return t ? new Date(t).toLocaleString() : '–'; }

export function table(head, rows, empty) {
  if (!rows.length) return el('p', { class: 'empty' }, empty || 'Nothing here.');
  return el('table', {},
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

/// "Next page" for a keyset-paginated list: the cursor goes into the URL like any filter.
export function more(base, params, cursor) {
  if (!cursor) return null;
  const p = new URLSearchParams(params);
  p.set('cursor', cursor);
  return el('p', { class: 'more' }, el('a', { href: `#${base}?${p}`, id: 'next-page' }, 'Next page →'));
}

export function badge(state) { return el('span', { class: 'badge ' + state }, state); }

export function notice(text, kind) {
  const n = el('p', { class: 'notice ' + (kind || ''), role: 'status', id: 'notice' }, text);
  const old = document.getElementById('notice');
  if (old) old.replaceWith(n); else document.getElementById('main').prepend(n);
}

export async function act(label, f) {
  try { await f(); notice(label + ': done', 'ok'); state.refresh(); } catch (e) { notice(label + ': ' + e.message, 'error'); }
}

let kindsCache = null;
/// The job kinds and the role each needs (`GET /api/v1/kinds`): the server's rule, not a copy.
export async function kinds() {
  if (!kindsCache) kindsCache = await api('GET', '/kinds');
  return kindsCache;
}
