// Browser profiles, their live views, and the circuits of the domains they visit.

import { MAY_CHANGE, api, badge, el, notice, table, when } from '../lib.js';

/// Opens a live view of `profile` (at `url`) and goes to it.
async function openLive(profile, url) {
  try {
    const view = await api('POST', '/browser/live', url ? { profile, url } : { profile });
    location.hash = '#/live/' + view.id;
  } catch (e) {
    notice('Open live: ' + e.message, 'error');
  }
}

function openForm() {
  const profile = el('input', { id: 'live-profile', name: 'profile', required: true, placeholder: 'jobboard', pattern: '[a-z0-9_\\-]{1,64}' });
  const url = el('input', { id: 'live-url', name: 'url', type: 'url', placeholder: 'https://example.com/login' });
  return el('form', { id: 'open-live', class: 'inline', on: { submit: (e) => { e.preventDefault(); openLive(profile.value, url.value); } } },
    el('label', {}, 'Profile ', profile), el('label', {}, 'Address ', url),
    el('button', { type: 'submit', id: 'open-live-submit' }, 'Open live'));
}

export async function render() {
  const [sessions, circuits, lives] = await Promise.all([api('GET', '/browser/sessions'), api('GET', '/circuits'), api('GET', '/browser/live')]);
  const list = (v) => (Array.isArray(v) ? v : (v.items || []));
  return el('section', { id: 'browsers' }, el('h1', {}, 'Browsers'),
    el('h2', {}, 'Profiles'),
    MAY_CHANGE ? el('p', { class: 'hint' }, 'Log in to a site once, by hand, in a profile\'s browser: its runs then find the login there.') : null,
    MAY_CHANGE ? openForm() : null,
    table(['Profile', 'State', 'PID', 'Launches', 'Crashes', 'Runs', 'Last error', ''], list(sessions).map((b) => el('tr', { 'data-profile': b.profile },
      el('td', {}, b.profile), el('td', {}, badge(b.state)), el('td', {}, b.pid || '–'), el('td', {}, b.launches),
      el('td', {}, b.crashes), el('td', {}, b.runs), el('td', {}, b.last_error || ''),
      el('td', {}, MAY_CHANGE ? el('button', { type: 'button', class: 'open-live', on: { click: () => openLive(b.profile) } }, 'Open live') : ''))), 'No profiles yet.'),
    el('h2', {}, 'Live views'),
    table(['Profile', 'Opened by', 'Since', 'Watching', ''], lives.map((v) => el('tr', { 'data-live': v.id },
      el('td', {}, v.profile), el('td', {}, v.opened_by), el('td', {}, when(v.started_at)), el('td', {}, v.viewers),
      el('td', {}, MAY_CHANGE ? el('a', { href: '#/live/' + v.id }, 'Show') : ''))), 'No live view is open.'),
    el('h2', {}, 'Circuits'),
    table(['Domain', 'State', 'Failures', 'Open until', 'Last error'], list(circuits).map((c) => el('tr', {},
      el('td', {}, c.domain), el('td', {}, badge(c.state)), el('td', {}, c.failures), el('td', {}, when(c.open_until)),
      el('td', {}, c.last_error || ''))), 'No circuits.'));
}
