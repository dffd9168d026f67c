// Jobs: filters, bulk actions, and the new-job forms.

import { MAY_CHANGE, act, api, badge, el, kinds, more, notice, table, when } from '../lib.js';
import { createForm, kindForm } from '../components/jobforms.js';

export const live = true;

export async function render(params) {
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
    MAY_CHANGE ? kindForm(await kinds()) : null,
    MAY_CHANGE ? createForm() : null);
}
