// Feature flags: in effect, from where, and (admins) set at runtime.

import { IS_ADMIN, act, api, el, table, when } from '../lib.js';

export async function render() {
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
