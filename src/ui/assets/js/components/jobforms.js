// The job editors: a form per kind (errors at their field), and the whole job as JSON.

import { ROLE, api, el, notice, state } from '../lib.js';

export function createForm() {
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
      state.refresh();
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

export function editForm(j) {
  const errors = el('ul', { class: 'errors', id: 'edit-errors' });
  const current = { schedule: j.schedule, policy: j.policy, payload: j.payload, tags: j.tags, metadata: j.metadata };
  const text = el('textarea', { id: 'edit-json', rows: 14, 'aria-label': 'the job as JSON',
    on: { focus: () => { state.editing = true; } } }, JSON.stringify(current, null, 2));
  return el('form', { id: 'edit', on: { submit: async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    let body;
    try { body = JSON.parse(text.value); } catch (err) { errors.append(el('li', {}, 'Not JSON: ' + err.message)); return; }
    try {
      await api('PATCH', '/jobs/' + encodeURIComponent(j.name), body);
      state.editing = false;
      notice('saved ' + j.name, 'ok');
      state.refresh();
    } catch (err) {
      errors.append(...(err.fields.length ? err.fields : [{ path: '', message: err.message }])
        .map((f) => el('li', { 'data-path': f.path }, (f.path ? f.path + ': ' : '') + f.message)));
    }
  } } }, text, errors, el('button', { type: 'submit', id: 'save-job' }, 'Save'));
}

/// A form per kind: the common fields, then the kind's own; errors appear at their field.
export function kindForm(allKinds, j) {
  const editing_ = !!j;
  // The kinds this caller may create, as the server says (`GET /api/v1/kinds`).
  const kinds = allKinds.filter((k) => k.role === 'operator' || ROLE === 'admin').map((k) => k.name);
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
  // A new job starts as the simplest kind; the fields shown always follow the kind chosen.
  const initial = editing_ ? j.kind : (kinds.includes('noop') ? 'noop' : kinds[0]);
  const select = el('select', { name: 'kind', id: 'form-kind', disabled: editing_, on: { change: () => kindBox.replaceChildren(...(specific[select.value] || [])) } },
    (editing_ ? [j.kind] : kinds).map((k) => el('option', { value: k, selected: k === initial }, k)));
  kindBox.replaceChildren(...(specific[select.value] || []));
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
        state.editing = false;
        notice('saved ' + j.name, 'ok');
      } else {
        await api('POST', '/jobs', body);
        notice('created ' + body.name, 'ok');
      }
      state.refresh();
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
      i.addEventListener('focus', () => { state.editing = true; });
    }
  }
  return form;
}
