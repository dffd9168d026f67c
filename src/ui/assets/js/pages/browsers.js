// Browser profiles and the circuits of the domains they visit.

import { api, badge, el, table, when } from '../lib.js';

export async function render() {
  const [sessions, circuits] = await Promise.all([api('GET', '/browser/sessions'), api('GET', '/circuits')]);
  const list = (v) => (Array.isArray(v) ? v : (v.items || []));
  return el('section', { id: 'browsers' }, el('h1', {}, 'Browsers'),
    el('h2', {}, 'Profiles'),
    table(['Profile', 'State', 'PID', 'Launches', 'Crashes', 'Runs', 'Last error'], list(sessions).map((b) => el('tr', { 'data-profile': b.profile },
      el('td', {}, b.profile), el('td', {}, badge(b.state)), el('td', {}, b.pid || '–'), el('td', {}, b.launches),
      el('td', {}, b.crashes), el('td', {}, b.runs), el('td', {}, b.last_error || ''))), 'No profiles yet.'),
    el('h2', {}, 'Circuits'),
    table(['Domain', 'State', 'Failures', 'Open until', 'Last error'], list(circuits).map((c) => el('tr', {},
      el('td', {}, c.domain), el('td', {}, badge(c.state)), el('td', {}, c.failures), el('td', {}, when(c.open_until)),
      el('td', {}, c.last_error || ''))), 'No circuits.'));
}
