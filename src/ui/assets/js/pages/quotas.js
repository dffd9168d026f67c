// Quotas and the use of each window.

import { api, el, table, when } from '../lib.js';

export async function render() {
  const list = await api('GET', '/quotas');
  return el('section', { id: 'quotas' }, el('h1', {}, 'Quotas'),
    table(['Quota', 'Window', 'Used', 'Remaining', 'Resets'], list.flatMap((q) => (q.windows || []).map((w) => el('tr', { 'data-quota': q.name },
      el('td', {}, q.name), el('td', {}, w.window),
      el('td', {}, el('meter', { min: 0, max: w.limit, value: w.used, title: `${w.used} of ${w.limit}` }), ` ${w.used} / ${w.limit}`),
      el('td', {}, w.remaining), el('td', {}, when(w.resets_at))))), 'No quotas.'));
}
