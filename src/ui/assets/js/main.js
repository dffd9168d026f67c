// overseer's dashboard: the router. Each page is a module in pages/ exporting render() (and
// `live` when it follows changes); the route lives in the URL (#/path?query), so a view can
// be bookmarked. No framework and no build step.

import { el, state } from './lib.js';
import * as audit from './pages/audit.js';
import * as browsers from './pages/browsers.js';
import * as flags from './pages/flags.js';
import * as job from './pages/job.js';
import * as jobs from './pages/jobs.js';
import * as live from './pages/live.js';
import * as notifications from './pages/notifications.js';
import * as overview from './pages/overview.js';
import * as quotas from './pages/quotas.js';
import * as run from './pages/run.js';
import * as runs from './pages/runs.js';

/// Every page: an exact path (render gets the query's parameters) or a prefix (render gets
/// the rest of the path, decoded).
const PAGES = [
  { path: '/', page: overview },
  { path: '/jobs', page: jobs },
  { prefix: '/jobs/', page: job },
  { path: '/runs', page: runs },
  { prefix: '/runs/', page: run },
  { path: '/quotas', page: quotas },
  { path: '/notifications', page: notifications },
  { path: '/browsers', page: browsers },
  { prefix: '/live/', page: live },
  { path: '/flags', page: flags },
  { path: '/audit', page: audit },
];

const REFRESH_MS = 2000;

function route() {
  const [path, q] = (location.hash.slice(1) || '/').split('?');
  return { path, params: new URLSearchParams(q || '') };
}

function find(path, params) {
  for (const p of PAGES) {
    if (p.path === path) return { page: p.page, arg: params };
    if (p.prefix && path.startsWith(p.prefix)) {
      return { page: p.page, arg: decodeURIComponent(path.slice(p.prefix.length)) };
    }
  }
  return null;
}

let timer = null;
// A refresh waits while the user edits a form (state.editing, kept until it is saved or they
// leave the page), has something selected or a field focused: it would throw their input
// and the errors they are reading away.
function later() {
  const busy = state.editing || document.querySelector('input.pick:checked') ||
    (document.activeElement && ['TEXTAREA', 'INPUT', 'SELECT'].includes(document.activeElement.tagName));
  if (busy) { timer = setTimeout(later, REFRESH_MS); return; }
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  // The page being left lets go of what it holds open (a live view's stream).
  if (state.leave) { const leave = state.leave; state.leave = null; leave(); }
  const { path, params } = route();
  for (const a of document.querySelectorAll('nav a')) {
    const target = a.getAttribute('href').slice(1);
    a.setAttribute('aria-current', (target === '/' ? path === '/' : path.startsWith(target)) ? 'page' : 'false');
  }
  const found = find(path, params);
  let view;
  try {
    view = found ? await found.page.render(found.arg) : el('p', {}, 'No such page.');
  } catch (e) {
    view = el('p', { class: 'notice error', role: 'alert' }, 'Could not load: ' + e.message);
  }
  const main = document.getElementById('main');
  const keep = document.getElementById('notice');
  main.replaceChildren(...(keep ? [keep] : []), view);
  // Lists and the overview follow what happens, without reloading the page.
  if (found && found.page.live) timer = setTimeout(later, REFRESH_MS);
}
state.refresh = refresh;

window.addEventListener('hashchange', () => {
  state.editing = false;
  const n = document.getElementById('notice');
  if (n) n.remove();
  refresh();
});
// A module runs after the document is parsed.
refresh();
