// The audit log (admins).

import { api, el, more, table, when } from '../lib.js';

export async function render(params) {
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
