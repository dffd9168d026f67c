// The overview: readiness, counts, charts, nodes, actors, quotas near their limit.

import { badge, el, api, table, when } from '../lib.js';
import { bars } from '../components/chart.js';

export const live = true;

export async function render() {
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
