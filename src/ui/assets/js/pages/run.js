// One run: its timeline, attempts, whether it waits for a person, error, steps, program
// output and artifacts.

import { MAY_CHANGE, act, api, badge, el, table, when } from '../lib.js';

export async function render(id) {
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
    r.waiting && r.state === 'running' ? el('p', { class: 'notice warning', id: 'run-waiting', role: 'status' },
      `Waiting for a person until ${when(r.waiting.deadline)}: ${r.waiting.reason}. `,
      MAY_CHANGE ? el('a', { href: r.waiting.link.replace('/ui/', ''), id: 'take-over' }, 'Take over in the live view') : '') : null,
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
