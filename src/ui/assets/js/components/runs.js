// A table of runs, with requeue for dead letters.

import { MAY_CHANGE, act, api, badge, el, table, when } from '../lib.js';

export function runRows(items) {
  return table(['Run', 'State', 'Attempt', 'Fire', 'Finished', 'Error', ''], items.map((r) => el('tr', { 'data-run': r.id, 'data-state': r.state },
    el('td', {}, el('a', { href: '#/runs/' + r.id }, r.id.slice(0, 8))), el('td', {}, badge(r.state), r.waiting && r.state === 'running' ? [' ', el('span', { class: 'badge waiting', title: r.waiting.reason }, 'waiting for a person')] : null),
    el('td', {}, r.attempt), el('td', {}, when(r.fire_at)), el('td', {}, when(r.finished_at)),
    el('td', {}, r.error_kind || ''),
    el('td', { class: 'actions' }, MAY_CHANGE && ['failed', 'timed_out', 'zombie', 'missed'].includes(r.state)
      ? el('button', { class: 'requeue', on: { click: () => act('requeue', () => api('POST', `/runs/${r.id}/requeue`)) } }, 'Requeue') : null))),
  'No runs yet.');
}
