// One job: its figures, its definition (editable), its recent runs.

import { MAY_CHANGE, ROLE, api, badge, el, kinds, when } from '../lib.js';
import { bars } from '../components/chart.js';
import { runRows } from '../components/runs.js';
import { editForm, kindForm } from '../components/jobforms.js';

export const live = true;

export async function render(name) {
  const [j, recent] = await Promise.all([
    api('GET', '/jobs/' + encodeURIComponent(name)),
    api('GET', '/runs?limit=20&job=' + encodeURIComponent(name)),
  ]);
  const all = await kinds();
  const kind = all.find((k) => k.name === j.kind);
  const mayEdit = MAY_CHANGE && !!kind && (kind.role === 'operator' || ROLE === 'admin');
  const done = recent.items.filter((r) => r.finished_at);
  const ok = done.filter((r) => r.state === 'succeeded').length;
  return el('section', { id: 'job' }, el('h1', {}, j.name, ' ', badge(j.state)),
    el('dl', { class: 'figures' },
      el('dt', {}, 'Kind'), el('dd', {}, j.kind),
      el('dt', {}, 'Next fire'), el('dd', {}, when(j.next_fire_at)),
      el('dt', {}, 'Success (last 20)'), el('dd', {}, done.length ? `${ok} of ${done.length}` : '–')),
    el('h2', {}, 'Definition'),
    mayEdit ? [kindForm(all, j), editForm(j)]
      : el('pre', {}, JSON.stringify({ schedule: j.schedule, policy: j.policy, payload: j.payload }, null, 2)),
    done.length ? bars('chart-durations', [...done].reverse().map((r) => ({
      at: r.finished_at, ms: Math.max(0, new Date(r.finished_at) - new Date(r.started_at || r.finished_at)) })),
      'ms', 'Duration of the last runs (ms)') : null,
    el('h2', {}, 'Recent runs'), runRows(recent.items));
}
