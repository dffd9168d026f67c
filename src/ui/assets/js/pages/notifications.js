// The notification outbox, with resend of failed ones.

import { MAY_CHANGE, act, api, badge, el, more, table, when } from '../lib.js';

export const live = true;

export async function render(params) {
  const q = new URLSearchParams({ limit: '100' });
  for (const k of ['state', 'cursor']) if (params.get(k)) q.set(k, params.get(k));
  const page = await api('GET', '/notifications?' + q);
  return el('section', { id: 'notifications' }, el('h1', {}, 'Notifications'),
    el('p', { class: 'filters' }, ['', 'pending', 'sent', 'failed'].map((s) => el('a', { href: '#/notifications' + (s ? '?state=' + s : ''), 'aria-current': (params.get('state') || '') === s ? 'true' : 'false' }, s || 'all'))),
    table(['When', 'Event', 'Channel', 'State', 'Attempts', 'Subject', 'Last error', ''], page.items.map((n) => el('tr', { 'data-notification': n.id, 'data-state': n.state },
      el('td', {}, when(n.created_at)), el('td', {}, n.event), el('td', {}, n.channel), el('td', {}, badge(n.state)),
      el('td', {}, n.attempts), el('td', {}, n.subject), el('td', {}, n.last_error || ''),
      el('td', { class: 'actions' }, MAY_CHANGE && n.state === 'failed'
        ? el('button', { class: 'resend', on: { click: () => act('resend', () => api('POST', `/notifications/${n.id}/resend`)) } }, 'Resend') : null))),
    'No notifications.'), more('/notifications', params, page.next_cursor));
}
