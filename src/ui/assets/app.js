// overseer's dashboard: a few pages over /api/v1, with the session cookie and the session's
// CSRF token (from <meta name="csrf">) on every change. No framework and no build step:
// elements are made with el(), never from HTML strings, so page data cannot become markup.
'use strict';

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const CSRF = meta('csrf');
const ROLE = meta('role');
const MAY_CHANGE = ROLE === 'operator' || ROLE === 'admin';
const REFRESH_MS = 2000;

function el(tag, attrs, ...children) {
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

async function api(method, path, body) {
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

function when(t) { return t ? new Date(t).toLocaleString() : '–'; }

function table(head, rows, empty) {
  if (!rows.length) return el('p', { class: 'empty' }, empty || 'Nothing here.');
  return el('table', {},
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

/// "Next page" for a keyset-paginated list: the cursor goes into the URL like any filter.
function more(base, params, cursor) {
  if (!cursor) return null;
  const p = new URLSearchParams(params);
  p.set('cursor', cursor);
  return el('p', { class: 'more' }, el('a', { href: `#${base}?${p}`, id: 'next-page' }, 'Next page →'));
}

function badge(state) { return el('span', { class: 'badge ' + state }, state); }

function notice(text, kind) {
  const n = el('p', { class: 'notice ' + (kind || ''), role: 'status', id: 'notice' }, text);
  const old = document.getElementById('notice');
  if (old) old.replaceWith(n); else document.getElementById('main').prepend(n);
}

async function act(label, f) {
  try { await f(); notice(label + ': done', 'ok'); refresh(); } catch (e) { notice(label + ': ' + e.message, 'error'); }
}

// -------------------------------------------------------------------------------------------
// Routing: #/path?query. Filters live in the URL, so a view can be bookmarked.

function route() {
  const [path, q] = (location.hash.slice(1) || '/').split('?');
  return { path, params: new URLSearchParams(q || '') };
}

let timer = null;
// Set once the user touches an edit form, and kept until it is saved or they leave the page:
// a refresh would throw away what they typed and the errors they are reading.
let editing = false;
function later() {
  const busy = editing || document.querySelector('input.pick:checked') ||
    (document.activeElement && ['TEXTAREA', 'INPUT', 'SELECT'].includes(document.activeElement.tagName));
  if (busy) { timer = setTimeout(later, REFRESH_MS); return; }
  refresh();
}
async function refresh() {
  clearTimeout(timer);
  const { path, params } = route();
  for (const a of document.querySelectorAll('nav a')) {
    const target = a.getAttribute('href').slice(1);
    a.setAttribute('aria-current', (target === '/' ? path === '/' : path.startsWith(target)) ? 'page' : 'false');
  }
  let view;
  try {
    if (path === '/') view = await overview();
    else if (path === '/jobs') view = await jobs(params);
    else if (path.startsWith('/jobs/')) view = await job(decodeURIComponent(path.slice(6)));
    else if (path === '/runs') view = await runs(params);
    else if (path.startsWith('/runs/')) view = await run(path.slice(6));
    else if (path === '/quotas') view = await quotas();
    else if (path === '/notifications') view = await notifications(params);
    else if (path === '/browsers') view = await browsers();
    else if (path === '/flags') view = await flags();
    else if (path === '/audit') view = await audit(params);
    else view = el('p', {}, 'No such page.');
  } catch (e) {
    view = el('p', { class: 'notice error', role: 'alert' }, 'Could not load: ' + e.message);
  }
  const main = document.getElementById('main');
  const keep = document.getElementById('notice');
  main.replaceChildren(...(keep ? [keep] : []), view);
  // Lists and the overview follow what happens, without reloading the page; a page where
  // something is selected or being edited waits until the user is done.
  if (path === '/' || path === '/runs' || path === '/jobs' || path.startsWith('/jobs/') || path === '/notifications') {
    timer = setTimeout(later, REFRESH_MS);
  }
}

window.addEventListener('hashchange', () => {
  editing = false;
  const n = document.getElementById('notice');
  if (n) n.remove();
  refresh();
});
window.addEventListener('DOMContentLoaded', refresh);

// -------------------------------------------------------------------------------------------
// Pages

/// A small bar chart (SVG made with DOM calls: nothing from the data becomes markup).
function bars(id, buckets, key, title) {
  const NS = 'http://www.w3.org/2000/svg';
  const w = 300, h = 60, max = Math.max(1, ...buckets.map((b) => b[key]));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('id', id);
  svg.setAttribute('role', 'img');
  const total = buckets.reduce((n, b) => n + b[key], 0);
  svg.setAttribute('aria-label', `${title}: ${total} in all`);
  const bw = w / buckets.length;
  buckets.forEach((b, i) => {
    const bh = Math.round((b[key] / max) * (h - 2));
    const r = document.createElementNS(NS, 'rect');
    r.setAttribute('x', String(i * bw + 0.5));
    r.setAttribute('y', String(h - bh));
    r.setAttribute('width', String(Math.max(1, bw - 1)));
    r.setAttribute('height', String(bh));
    r.setAttribute('class', key);
    const t = document.createElementNS(NS, 'title');
    t.textContent = `${when(b.at)}: ${b[key]}`;
    r.append(t);
    svg.append(r);
  });
  return el('figure', { class: 'chartbox' }, svg, el('figcaption', {}, `${title} (${total})`));
}

async function overview() {
  const stats = await api('GET', '/stats/runs');
  const [circuits, undelivered, nodes] = await Promise.all([
    api('GET', '/circuits'), api('GET', '/notifications?state=failed&limit=1000'), api('GET', '/nodes')]);
  const nodeList = Array.isArray(nodes) ? nodes : [];
  const openCircuits = (Array.isArray(circuits) ? circuits : (circuits.items || [])).filter((c) => c.state !== 'closed');
  const [ready, actors, leader, pending, running, failed, quotasList] = await Promise.all([
    fetch('/ready').then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => ({})) })),
    api('GET', '/actors'), api('GET', '/leader'),
    api('GET', '/runs?state=pending&limit=1000'), api('GET', '/runs?state=running&limit=1000'),
    api('GET', '/runs?state=failed&limit=100'), api('GET', '/quotas'),
  ]);
  const checks = (ready.body.failing || []).map((f) => el('li', {}, `${f.check}: ${f.reason || f.message || ''}`));
  const near = quotasList.flatMap((q) => (q.windows || [])
    .filter((w) => w.limit && w.used / w.limit >= 0.8)
    .map((w) => el('li', {}, `${q.name} (${w.window}): ${w.used} of ${w.limit}`)));
  return el('section', { id: 'overview' },
    el('h1', {}, 'Overview'),
    el('p', { id: 'readiness', class: ready.ok ? 'ok' : 'error' }, ready.ok ? 'Ready' : 'Not ready'),
    checks.length ? el('ul', { class: 'failing' }, checks) : null,
    el('dl', { class: 'figures' },
      el('dt', {}, 'Pending runs'), el('dd', { id: 'pending-count' }, pending.items.length),
      el('dt', {}, 'Running'), el('dd', { id: 'running-count' }, running.items.length),
      el('dt', {}, 'Recent failures'), el('dd', {}, failed.items.length),
      el('dt', {}, 'Leader'), el('dd', {}, (leader.lease && leader.lease.node_id) || 'none'),
      el('dt', {}, 'Open circuits'), el('dd', { id: 'open-circuits' }, openCircuits.length ? openCircuits.map((c) => c.domain).join(', ') : 'none'),
      el('dt', {}, 'Undelivered notifications'), el('dd', { id: 'undelivered' },
        el('a', { href: '#/notifications?state=failed' }, undelivered.items.length))),
    el('div', { class: 'charts' },
      bars('chart-hour', stats.last_hour, 'finished', 'Runs finished per minute, last hour'),
      bars('chart-day', stats.last_day, 'failed', 'Failures per hour, last 24 h')),
    el('h2', {}, 'Nodes'),
    table(['Node', 'Host', 'Version', 'Started', 'Last seen'], nodeList.filter((n) => !n.stopped_at).map((n) => el('tr', { class: 'node' },
      el('td', {}, n.id.slice(0, 8), leader.lease && leader.lease.node_id === n.id ? ' (leader)' : ''),
      el('td', {}, `${n.hostname} (pid ${n.pid})`), el('td', {}, n.version),
      el('td', {}, when(n.started_at)), el('td', {}, when(n.last_seen)))), 'No nodes.'),
    el('h2', {}, 'Actors'),
    table(['Actor', 'State', 'Restarts', 'Last failure'], actors.actors.map((a) => el('tr', {},
      el('td', {}, a.name), el('td', {}, badge(a.state)), el('td', {}, a.restarts),
      el('td', {}, a.last_failure ? `${a.last_failure.message} (${when(a.last_failure.at)})` : '–')))),
    el('h2', {}, 'Quotas near their limit'),
    near.length ? el('ul', {}, near) : el('p', { class: 'empty' }, 'None.'));
}

async function jobs(params) {
  const q = new URLSearchParams();
  for (const k of ['state', 'kind', 'tag', 'name_prefix', 'cursor', 'limit']) if (params.get(k)) q.set(k, params.get(k));
  const page = await api('GET', '/jobs?' + q);
  const filter = el('form', { class: 'filters', on: { submit: (e) => {
    e.preventDefault();
    const f = new FormData(e.target); const p = new URLSearchParams();
    for (const [k, v] of f) if (v) p.set(k, v);
    location.hash = '#/jobs?' + p;
  } } },
  el('label', {}, 'Name starts with ', el('input', { name: 'name_prefix', value: params.get('name_prefix') || '' })),
  el('label', {}, 'Kind ', el('input', { name: 'kind', value: params.get('kind') || '' })),
  el('label', {}, 'Tag ', el('input', { name: 'tag', value: params.get('tag') || '' })),
  el('label', {}, 'State ', el('select', { name: 'state' }, ['', 'active', 'paused', 'completed', 'cancelled']
    .map((s) => el('option', { value: s, selected: params.get('state') === s }, s || 'any')))),
  el('button', { type: 'submit' }, 'Filter'));
  const rows = page.items.map((j) => el('tr', { 'data-job': j.name },
    MAY_CHANGE ? el('td', {}, el('input', { type: 'checkbox', class: 'pick', value: j.name, 'aria-label': 'select ' + j.name })) : null,
    el('td', {}, el('a', { href: '#/jobs/' + encodeURIComponent(j.name) }, j.name)),
    el('td', {}, j.kind), el('td', {}, badge(j.state)), el('td', {}, when(j.next_fire_at)),
    el('td', { class: 'actions' }, MAY_CHANGE ? [
      j.state === 'active' ? el('button', { class: 'pause', on: { click: () => act('pause ' + j.name, () => api('POST', `/jobs/${encodeURIComponent(j.name)}/pause`)) } }, 'Pause') : null,
      j.state === 'paused' ? el('button', { class: 'resume', on: { click: () => act('resume ' + j.name, () => api('POST', `/jobs/${encodeURIComponent(j.name)}/resume`)) } }, 'Resume') : null,
      j.state !== 'cancelled' ? el('button', { class: 'trigger', on: { click: () => act('trigger ' + j.name, () => api('POST', `/jobs/${encodeURIComponent(j.name)}/trigger`)) } }, 'Run now') : null,
    ] : null)));
  const bulk = (action, label) => el('button', { class: 'bulk-' + action, type: 'button', on: { click: () => {
    const names = [...document.querySelectorAll('#jobs input.pick:checked')].map((c) => c.value);
    if (!names.length) { notice('select jobs first', 'error'); return; }
    act(`${label} ${names.length} jobs`, async () => {
      const refused = [];
      for (const n of names) {
        try { await api('POST', `/jobs/${encodeURIComponent(n)}/${action}`); } catch (e) { refused.push(`${n}: ${e.message}`); }
      }
      if (refused.length) throw new Error(`${names.length - refused.length} done, ${refused.length} refused (${refused.join('; ')})`);
    });
  } } }, label + ' selected');
  const head = MAY_CHANGE ? ['', 'Name', 'Kind', 'State', 'Next fire', ''] : ['Name', 'Kind', 'State', 'Next fire', ''];
  return el('section', { id: 'jobs' }, el('h1', {}, 'Jobs'), filter,
    MAY_CHANGE ? el('p', { class: 'bulk' }, bulk('pause', 'Pause'), ' ', bulk('resume', 'Resume'), ' ', bulk('trigger', 'Run')) : null,
    table(head, rows, 'No jobs match.'), more('/jobs', params, page.next_cursor),
    MAY_CHANGE ? kindForm() : null,
    MAY_CHANGE ? createForm() : null);
}

function createForm() {
  const errors = el('ul', { class: 'errors', id: 'create-errors' });
  const example = { name: 'my-job', kind: 'noop', schedule: { cron: '0 9 * * *', timezone: 'Europe/Berlin' }, payload: {} };
  const text = el('textarea', { id: 'job-json', rows: 8, 'aria-label': 'job as JSON' }, JSON.stringify(example, null, 2));
  const preview = el('ul', { id: 'preview', class: 'preview' });
  return el('form', { id: 'create', on: { submit: async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    let body;
    try { body = JSON.parse(text.value); } catch (err) { errors.append(el('li', {}, 'Not JSON: ' + err.message)); return; }
    try {
      await api('POST', '/jobs', body);
      notice('created ' + body.name, 'ok');
      refresh();
    } catch (err) {
      errors.append(...(err.fields.length ? err.fields : [{ path: '', message: err.message }])
        .map((f) => el('li', { 'data-path': f.path }, (f.path ? f.path + ': ' : '') + f.message)));
    }
  } } }, el('h2', {}, 'New job (JSON)'), text, errors,
  el('button', { type: 'button', id: 'preview-schedule', on: { click: async () => {
    preview.replaceChildren();
    errors.replaceChildren();
    let body;
    try { body = JSON.parse(text.value); } catch (err) { errors.append(el('li', {}, 'Not JSON: ' + err.message)); return; }
    try {
      const p = await api('POST', '/schedules/preview', { schedule: body.schedule, count: 10 });
      preview.append(el('li', { class: 'tz' }, 'Next fires (' + p.timezone + '):'),
        ...p.fires.map((f) => el('li', { class: 'fire' }, f.local || f.at)));
    } catch (err) {
      errors.append(...(err.fields.length ? err.fields : [{ path: '', message: err.message }])
        .map((f) => el('li', { 'data-path': f.path }, (f.path ? f.path + ': ' : '') + f.message)));
    }
  } } }, 'Preview schedule'), ' ',
  el('button', { type: 'submit', id: 'create-job' }, 'Create'), preview);
}

async function job(name) {
  const [j, recent] = await Promise.all([
    api('GET', '/jobs/' + encodeURIComponent(name)),
    api('GET', '/runs?limit=20&job=' + encodeURIComponent(name)),
  ]);
  const done = recent.items.filter((r) => r.finished_at);
  const ok = done.filter((r) => r.state === 'succeeded').length;
  return el('section', { id: 'job' }, el('h1', {}, j.name, ' ', badge(j.state)),
    el('dl', { class: 'figures' },
      el('dt', {}, 'Kind'), el('dd', {}, j.kind),
      el('dt', {}, 'Next fire'), el('dd', {}, when(j.next_fire_at)),
      el('dt', {}, 'Success (last 20)'), el('dd', {}, done.length ? `${ok} of ${done.length}` : '–')),
    el('h2', {}, 'Definition'),
    MAY_CHANGE && !(j.kind === 'command' && ROLE !== 'admin') ? [kindForm(j), editForm(j)]
      : el('pre', {}, JSON.stringify({ schedule: j.schedule, policy: j.policy, payload: j.payload }, null, 2)),
    done.length ? bars('chart-durations', [...done].reverse().map((r) => ({
      at: r.finished_at, ms: Math.max(0, new Date(r.finished_at) - new Date(r.started_at || r.finished_at)) })),
      'ms', 'Duration of the last runs (ms)') : null,
    el('h2', {}, 'Recent runs'), runRows(recent.items));
}

function runRows(items) {
  return table(['Run', 'State', 'Attempt', 'Fire', 'Finished', 'Error', ''], items.map((r) => el('tr', { 'data-run': r.id, 'data-state': r.state },
    el('td', {}, el('a', { href: '#/runs/' + r.id }, r.id.slice(0, 8))), el('td', {}, badge(r.state)),
    el('td', {}, r.attempt), el('td', {}, when(r.fire_at)), el('td', {}, when(r.finished_at)),
    el('td', {}, r.error_kind || ''),
    el('td', { class: 'actions' }, MAY_CHANGE && ['failed', 'timed_out', 'zombie', 'missed'].includes(r.state)
      ? el('button', { class: 'requeue', on: { click: () => act('requeue', () => api('POST', `/runs/${r.id}/requeue`)) } }, 'Requeue') : null))),
  'No runs yet.');
}

async function runs(params) {
  const q = new URLSearchParams({ limit: '100' });
  for (const k of ['state', 'job', 'since', 'until', 'cursor']) if (params.get(k)) q.set(k, params.get(k));
  const page = await api('GET', '/runs?' + q);
  const states = ['', 'pending', 'running', 'succeeded', 'failed', 'timed_out', 'zombie', 'missed', 'cancelled', 'deferred'];
  const here = (extra) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(extra)) { if (v) p.set(k, v); else p.delete(k); }
    return '#/runs' + (p.toString() ? '?' + p : '');
  };
  const localValue = (iso) => (iso ? iso.slice(0, 16) : '');
  const filter = el('form', { class: 'filters', id: 'run-filters', on: { submit: (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const iso = (v) => (v ? new Date(v).toISOString() : '');
    location.hash = here({ job: f.get('job'), since: iso(f.get('since')), until: iso(f.get('until')) });
  } } },
  el('label', {}, 'Job ', el('input', { name: 'job', value: params.get('job') || '' })),
  el('label', {}, 'Since ', el('input', { name: 'since', type: 'datetime-local', value: localValue(params.get('since')) })),
  el('label', {}, 'Until ', el('input', { name: 'until', type: 'datetime-local', value: localValue(params.get('until')) })),
  el('button', { type: 'submit' }, 'Filter'));
  const dead = page.items.filter((r) => ['failed', 'timed_out', 'zombie', 'missed'].includes(r.state));
  return el('section', { id: 'runs' }, el('h1', {}, 'Runs'),
    el('p', { class: 'filters' }, states.map((s) => el('a', { href: here({ state: s }), 'aria-current': (params.get('state') || '') === s ? 'true' : 'false' }, s || 'all'))),
    filter,
    MAY_CHANGE && dead.length ? el('p', { class: 'bulk' }, el('button', { id: 'requeue-all', type: 'button', on: { click: () => act(`requeue ${dead.length} dead letters`, async () => {
      const refused = [];
      for (const r of dead) {
        try { await api('POST', `/runs/${r.id}/requeue`); } catch (e) { refused.push(`${r.id.slice(0, 8)}: ${e.message}`); }
      }
      if (refused.length) throw new Error(`${dead.length - refused.length} done, ${refused.length} refused (${refused.join('; ')})`);
    }) } }, `Requeue the ${dead.length} dead letters shown`)) : null,
    runRows(page.items), more('/runs', params, page.next_cursor));
}

async function run(id) {
  const r = await api('GET', '/runs/' + id);
  const siblings = (await api('GET', '/runs?limit=1000&job=' + r.job_id)).items
    .filter((x) => x.fire_at === r.fire_at).sort((a, b) => a.attempt - b.attempt);
  const out = r.output || {};
  const names = [...(out.artifacts || [])];
  // A failed browser run keeps its last screenshot; shown when there is one.
  if (r.error_kind && !names.includes('failure.png')) names.push('failure.png?optional');
  const artifacts = names.map((given) => {
    const optional = given.endsWith('?optional');
    const name = given.replace('?optional', '');
    const src = `/api/v1/runs/${r.id}/artifacts/${encodeURIComponent(name)}`;
    if (name.endsWith('.png')) {
      const fig = el('figure', {}, el('img', { src, alt: name, class: 'shot', on: { error: () => { if (optional) fig.remove(); } } }), el('figcaption', {}, name));
      return fig;
    }
    const pre = el('pre', { class: 'log', 'data-artifact': name }, 'loading…');
    fetch(src, { credentials: 'same-origin' }).then((x) => x.text()).then((t) => { pre.textContent = t; });
    return el('figure', {}, pre, el('figcaption', {}, name));
  });
  return el('section', { id: 'run' }, el('h1', {}, 'Run ', r.id.slice(0, 8), ' ', badge(r.state)),
    el('ol', { class: 'timeline' },
      el('li', {}, 'queued ', when(r.queued_at)), el('li', {}, 'due ', when(r.due_at)),
      r.started_at ? el('li', {}, 'started ', when(r.started_at)) : null,
      r.heartbeat_at ? el('li', {}, 'last heartbeat ', when(r.heartbeat_at)) : null,
      r.finished_at ? el('li', {}, 'finished ', when(r.finished_at)) : null),
    el('p', {}, 'Attempt ', r.attempt, r.progress ? ` · progress: ${r.progress}` : ''),
    siblings.length > 1 ? el('ol', { class: 'attempts', id: 'attempts' }, siblings.map((x) => el('li', {},
      x.id === r.id ? el('strong', {}, `attempt ${x.attempt}`) : el('a', { href: '#/runs/' + x.id }, `attempt ${x.attempt}`),
      ' ', badge(x.state), x.error_kind ? ` ${x.error_kind}` : '', ' · ', when(x.finished_at || x.started_at || x.queued_at)))) : null,
    r.error_kind ? el('p', { class: 'notice error', id: 'run-error' }, `${r.error_kind}: ${r.error_message || ''}`) : null,
    MAY_CHANGE && ['failed', 'timed_out', 'zombie', 'missed'].includes(r.state)
      ? el('button', { class: 'requeue', on: { click: () => act('requeue', () => api('POST', `/runs/${r.id}/requeue`)) } }, 'Requeue') : null,
    out.extracted ? [el('h2', {}, 'Extracted'), el('pre', { id: 'extracted' }, JSON.stringify(out.extracted, null, 2))] : null,
    Array.isArray(out.trace) && out.trace.length ? [el('h2', {}, 'Steps'),
      table(['Step', 'Action', 'Item', 'What happened', 'ms'], out.trace.map((t) => el('tr', { class: 'step' },
        el('td', {}, t.path || ''), el('td', {}, t.action || ''),
        el('td', {}, t.item ? `#${t.item.index} ${t.item.text || ''}` : (t.key || '')),
        el('td', {}, t.skipped ? 'skipped: ' + t.skipped : t.entered ? 'entered' : t.result !== undefined ? 'condition ' + t.result
          : t.admitted !== undefined ? (t.admitted ? 'admitted' : 'refused') : t.items !== undefined ? `${t.items} items` : ''),
        el('td', {}, t.ms !== undefined ? t.ms : '')))),
      out.uncertain ? el('p', { class: 'notice error' }, 'Uncertain (a run died inside): ' + out.uncertain.map((u) => u.key).join(', ')) : null,
      out.remaining_items && out.remaining_items.length ? el('p', {}, 'Not done: ' + out.remaining_items.map((r) => r.text).join(', ')) : null] : null,
    out.stdout_tail || out.stderr_tail ? [el('h2', {}, 'Program'),
      el('p', {}, out.exit_code !== undefined ? `exit code ${out.exit_code}` : `signal ${out.signal}`)] : null,
    artifacts.length ? [el('h2', {}, 'Artifacts'), el('div', { class: 'artifacts' }, artifacts)] : null,
    el('h2', {}, 'Output'), el('pre', { id: 'output' }, JSON.stringify(out, null, 2)));
}

async function quotas() {
  const list = await api('GET', '/quotas');
  return el('section', { id: 'quotas' }, el('h1', {}, 'Quotas'),
    table(['Quota', 'Window', 'Used', 'Remaining', 'Resets'], list.flatMap((q) => (q.windows || []).map((w) => el('tr', { 'data-quota': q.name },
      el('td', {}, q.name), el('td', {}, w.window),
      el('td', {}, el('meter', { min: 0, max: w.limit, value: w.used, title: `${w.used} of ${w.limit}` }), ` ${w.used} / ${w.limit}`),
      el('td', {}, w.remaining), el('td', {}, when(w.resets_at))))), 'No quotas.'));
}

async function notifications(params) {
  const q = new URLSearchParams({ limit: '100' });
  for (const k of ['state', 'cursor']) if (params.get(k)) q.set(k, params.get(k));
  const page = await api('GET', '/notifications?' + q);
  return el('section', { id: 'notifications' }, el('h1', {}, 'Notifications'),
    el('p', { class: 'filters' }, ['', 'pending', 'sent', 'failed'].map((s) => el('a', { href: '#/notifications' + (s ? '?state=' + s : ''), 'aria-current': (params.get('state') || '') === s ? 'true' : 'false' }, s || 'all'))),
    table(['When', 'Event', 'Channel', 'State', 'Attempts', 'Subject', 'Last error', ''], page.items.map((n) => el('tr', { 'data-notification': n.id, 'data-state': n.state },
      el('td', {}, when(n.created_at)), el('td', {}, n.event), el('td', {}, n.channel), el('td', {}, badge(n.state)),
      el('td', {}, n.attempts), el('td', {}, n.subject), el('td', {}, n.last_error || ''),
      el('td', { class: 'actions' }, MAY_CHANGE && n.state === 'failed'
        ? el('button', { class: 'resend', on: { click: () => act('resend', () => api('POST', `/notifications/${n.id}/resend`)) } }, 'Resend') : null))),
    'No notifications.'), more('/notifications', params, page.next_cursor));
}

async function browsers() {
  const [sessions, circuits] = await Promise.all([api('GET', '/browser/sessions'), api('GET', '/circuits')]);
  const list = (v) => (Array.isArray(v) ? v : (v.items || []));
  return el('section', { id: 'browsers' }, el('h1', {}, 'Browsers'),
    el('h2', {}, 'Profiles'),
    table(['Profile', 'State', 'PID', 'Launches', 'Crashes', 'Runs', 'Last error'], list(sessions).map((b) => el('tr', { 'data-profile': b.profile },
      el('td', {}, b.profile), el('td', {}, badge(b.state)), el('td', {}, b.pid || '–'), el('td', {}, b.launches),
      el('td', {}, b.crashes), el('td', {}, b.runs), el('td', {}, b.last_error || ''))), 'No profiles yet.'),
    el('h2', {}, 'Circuits'),
    table(['Domain', 'State', 'Failures', 'Open until', 'Last error'], list(circuits).map((c) => el('tr', {},
      el('td', {}, c.domain), el('td', {}, badge(c.state)), el('td', {}, c.failures), el('td', {}, when(c.open_until)),
      el('td', {}, c.last_error || ''))), 'No circuits.'));
}

const IS_ADMIN = ROLE === 'admin';

async function flags() {
  const all = await api('GET', '/flags');
  const source = (f) => f.source === 'runtime'
    ? `runtime (set by ${f.set_by}, ${when(f.set_at)})`
    : f.source + (f.configured_from ? ` (${f.configured_from})` : '');
  const value = (f) => f.enabled ? 'on' : (f.percent === 0 ? 'off' : `${f.percent}% of ${f.rollout_by}s`);
  const controls = (name, f) => {
    if (!IS_ADMIN) return null;
    const now = f.enabled ? 'on' : (f.percent === 0 ? 'off' : 'percent');
    const option = (v, label) => el('option', { value: v, selected: now === v }, label);
    const choice = el('select', { class: 'setting', 'aria-label': `new value of ${name}` },
      option('on', 'on'), option('off', 'off'), f.rollout_by ? option('percent', 'percent…') : null);
    const percent = f.rollout_by ? el('input', { class: 'percent', type: 'number', min: 0, max: 100, value: f.percent, 'aria-label': `percent of ${f.rollout_by}s for ${name}` }) : null;
    const set = el('button', { class: 'set', on: { click: () => {
      const body = choice.value === 'percent' ? { percent: Number(percent.value) } : { enabled: choice.value === 'on' };
      act(`${name} set`, () => api('PUT', `/flags/${name}`, body));
    } } }, 'Set');
    const reset = f.source === 'runtime'
      ? el('button', { class: 'reset', on: { click: () => act(`${name} reset`, () => api('DELETE', `/flags/${name}`)) } }, 'Back to configured')
      : null;
    return [choice, percent, set, reset];
  };
  return el('section', { id: 'flags' }, el('h1', {}, 'Feature flags'),
    table(['Flag', 'In effect', 'From', 'Configured', 'Takes effect', ''], Object.entries(all).map(([name, f]) => el('tr', { 'data-flag': name, 'data-source': f.source },
      el('td', {}, name), el('td', { class: 'value' }, value(f)), el('td', { class: 'source' }, source(f)),
      el('td', {}, f.configured ? 'on' : 'off'), el('td', {}, f.takes_effect),
      el('td', { class: 'actions' }, controls(name, f))))));
}

async function audit(params) {
  const q = new URLSearchParams({ limit: '100' });
  for (const k of ['actor', 'action', 'target', 'outcome', 'cursor']) if (params.get(k)) q.set(k, params.get(k));
  const page = await api('GET', '/audit?' + q);
  const filter = (name, label) => el('label', {}, label + ' ',
    el('input', { name, value: params.get(name) || '', size: 14 }));
  const form = el('form', { id: 'audit-filters', class: 'filters', on: { submit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const i of e.target.querySelectorAll('input')) if (i.value) p.set(i.name, i.value);
    location.hash = '#/audit' + (p.toString() ? '?' + p : '');
  } } }, filter('actor', 'Actor'), filter('action', 'Action'), filter('target', 'Target'),
    el('label', {}, 'Outcome ', el('select', { name: 'outcome', on: { change: (e) => {
      const p = new URLSearchParams(params); p.delete('cursor');
      if (e.target.value) p.set('outcome', e.target.value); else p.delete('outcome');
      location.hash = '#/audit' + (p.toString() ? '?' + p : '');
    } } }, ['', 'ok', 'refused', 'failed'].map((o) => el('option', { value: o, selected: (params.get('outcome') || '') === o }, o || 'any')))),
    el('button', { type: 'submit' }, 'Filter'));
  return el('section', { id: 'audit' }, el('h1', {}, 'Audit log'), form,
    table(['When', 'Actor', 'Action', 'Target', 'Outcome', 'What changed / why', 'From'], page.items.map((r) => el('tr', { 'data-audit': r.id, 'data-action': r.action, 'data-outcome': r.outcome },
      el('td', {}, when(r.at)), el('td', {}, r.actor ? `${r.actor} (${r.role})` : '–'),
      el('td', {}, r.action), el('td', {}, r.target || ''), el('td', {}, el('span', { class: 'badge ' + r.outcome }, r.outcome), ` ${r.status}`),
      el('td', { class: 'diff' }, r.reason || (r.diff ? JSON.stringify(r.diff) : '')),
      el('td', {}, r.source || ''))), 'Nothing recorded.'),
    more('/audit', params, page.next_cursor));
}

function editForm(j) {
  const errors = el('ul', { class: 'errors', id: 'edit-errors' });
  const current = { schedule: j.schedule, policy: j.policy, payload: j.payload, tags: j.tags, metadata: j.metadata };
  const text = el('textarea', { id: 'edit-json', rows: 14, 'aria-label': 'the job as JSON',
    on: { focus: () => { editing = true; } } }, JSON.stringify(current, null, 2));
  return el('form', { id: 'edit', on: { submit: async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    let body;
    try { body = JSON.parse(text.value); } catch (err) { errors.append(el('li', {}, 'Not JSON: ' + err.message)); return; }
    try {
      await api('PATCH', '/jobs/' + encodeURIComponent(j.name), body);
      editing = false;
      notice('saved ' + j.name, 'ok');
      refresh();
    } catch (err) {
      errors.append(...(err.fields.length ? err.fields : [{ path: '', message: err.message }])
        .map((f) => el('li', { 'data-path': f.path }, (f.path ? f.path + ': ' : '') + f.message)));
    }
  } } }, text, errors, el('button', { type: 'submit', id: 'save-job' }, 'Save'));
}

/// A form per kind: the common fields, then the kind's own; errors appear at their field.
function kindForm(j) {
  const editing_ = !!j;
  const kinds = ROLE === 'admin' ? ['noop', 'http', 'notify', 'browser', 'command'] : ['noop', 'http', 'notify', 'browser'];
  const field = (label, name, attrs) => el('label', { class: 'field', 'data-for': name }, label, ' ',
    el(attrs && attrs.rows ? 'textarea' : 'input', Object.assign({ name, 'data-path': name }, attrs || {})));
  const specific = {
    noop: [],
    http: [field('URL', 'payload.url', { type: 'url', placeholder: 'https://example.org/health' }),
      field('Method', 'payload.method', { value: 'GET' })],
    notify: [field('Channels (comma-separated)', 'payload.channels', { value: 'log' }),
      field('Subject', 'payload.subject', {}), field('Body', 'payload.body', { rows: 3 })],
    browser: [field('Profile', 'payload.profile', { value: 'default' }),
      field('Steps (JSON)', 'payload.steps', { rows: 6, value: '[{"goto": {"url": "https://example.org/"}}]' })],
    command: [field('Program', 'payload.program', { placeholder: '/opt/automations/venv/bin/python' }),
      field('Arguments (one per line)', 'payload.args', { rows: 3 })],
  };
  const kindBox = el('div', { id: 'kind-fields' });
  const select = el('select', { name: 'kind', id: 'form-kind', disabled: editing_, on: { change: () => kindBox.replaceChildren(...specific[select.value]) } },
    (editing_ ? [j.kind] : kinds).map((k) => el('option', { value: k }, k)));
  kindBox.replaceChildren(...(specific[editing_ ? j.kind : 'noop'] || []));
  const general = el('ul', { class: 'errors', id: 'form-errors' });
  const form = el('form', { id: 'kind-form', on: { submit: async (e) => {
    e.preventDefault();
    for (const x of form.querySelectorAll('.field-error')) x.remove();
    general.replaceChildren();
    const v = (name) => { const i = form.querySelector(`[name="${name}"]`); return i ? i.value.trim() : ''; };
    const kind = select.value;
    // Editing keeps the payload fields the form does not show.
    const body = { name: v('name'), kind, schedule: {}, payload: editing_ ? Object.assign({}, j.payload) : {} };
    const how = v('schedule.how');
    body.schedule[how] = v('schedule.value');
    if (v('schedule.timezone')) body.schedule.timezone = v('schedule.timezone');
    try {
      if (kind === 'http') { body.payload.url = v('payload.url'); body.payload.method = v('payload.method') || 'GET'; }
      if (kind === 'notify') {
        body.payload.channels = v('payload.channels').split(',').map((c) => c.trim()).filter(Boolean);
        body.payload.subject = v('payload.subject');
        if (v('payload.body')) body.payload.body = v('payload.body');
      }
      if (kind === 'browser') { body.payload.profile = v('payload.profile'); body.payload.steps = JSON.parse(v('payload.steps') || '[]'); }
      if (kind === 'command') {
        body.payload.program = v('payload.program');
        body.payload.args = v('payload.args').split('\n').map((a) => a.trim()).filter(Boolean);
      }
    } catch (err) { general.append(el('li', {}, 'Steps are not JSON: ' + err.message)); return; }
    try {
      if (editing_) {
        await api('PATCH', '/jobs/' + encodeURIComponent(j.name), { schedule: body.schedule, payload: body.payload });
        editing = false;
        notice('saved ' + j.name, 'ok');
      } else {
        await api('POST', '/jobs', body);
        notice('created ' + body.name, 'ok');
      }
      refresh();
    } catch (err) {
      for (const f of (err.fields.length ? err.fields : [{ path: '', message: err.message }])) {
        // The field itself, or the nearest one it belongs to (schedule.cron → schedule.value).
        const target = form.querySelector(`[data-path="${f.path}"]`) ||
          (f.path.startsWith('schedule') ? form.querySelector('[data-path="schedule.value"]') : null) ||
          [...form.querySelectorAll('[data-path]')].find((i) => f.path.startsWith(i.dataset.path + '.'));
        const msg = el('span', { class: 'field-error', role: 'alert', 'data-error-for': f.path }, f.message);
        if (target) target.after(msg); else general.append(el('li', { 'data-path': f.path }, (f.path ? f.path + ': ' : '') + f.message));
      }
    }
  } } },
  el('h2', {}, editing_ ? 'Change (form)' : 'New job (form)'),
  field('Name', 'name', { required: true, placeholder: 'daily-report', readonly: editing_, value: editing_ ? j.name : undefined }),
  el('label', { class: 'field' }, 'Kind ', select),
  el('label', { class: 'field' }, 'Schedule ', el('select', { name: 'schedule.how' },
    ['cron', 'every', 'at'].map((h) => el('option', { value: h }, h)))),
  field('Cron, interval or time', 'schedule.value', { placeholder: '0 9 * * *  |  1h  |  2026-12-24T18:00:00+01:00' }),
  field('Timezone (cron)', 'schedule.timezone', { placeholder: 'Europe/Berlin' }),
  kindBox, general, el('button', { type: 'submit', id: editing_ ? 'form-save' : 'form-create' }, editing_ ? 'Save' : 'Create'));
  if (editing_) {
    // The current values, in the form.
    const set = (name, value) => { const i = form.querySelector(`[name="${name}"]`); if (i && value !== undefined && value !== null) i.value = value; };
    const how = ['cron', 'every', 'at'].find((h) => j.schedule[h] !== undefined) || 'cron';
    set('schedule.how', how);
    set('schedule.value', j.schedule[how]);
    set('schedule.timezone', j.schedule.timezone);
    const p = j.payload || {};
    set('payload.url', p.url); set('payload.method', p.method);
    set('payload.channels', (p.channels || []).join(', ')); set('payload.subject', p.subject); set('payload.body', p.body);
    set('payload.profile', p.profile); if (p.steps) set('payload.steps', JSON.stringify(p.steps));
    set('payload.program', p.program); set('payload.args', (p.args || []).join('\n'));
    for (const i of form.querySelectorAll('input, textarea, select')) {
      i.addEventListener('focus', () => { editing = true; });
    }
  }
  return form;
}
