// Runs: by state, job and time, with requeue of the dead letters shown.

import { MAY_CHANGE, act, api, el, more } from '../lib.js';
import { runRows } from '../components/runs.js';

export const live = true;

export async function render(params) {
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
