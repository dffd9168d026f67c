// A live view of a profile's browser: the page as Chromium paints it (server-sent `frame`
// events), driven with the mouse, wheel, keyboard, paste and touch (mapped to the mouse);
// an address bar, back, forward, reload, the open tabs, and Done. The protocol is
// docs/LIVE.md; this page is one client of it.

import { el, CSRF, state } from '../lib.js';

const MODIFIERS = (e) => (e.altKey ? 1 : 0) | (e.ctrlKey ? 2 : 0) | (e.metaKey ? 4 : 0) | (e.shiftKey ? 8 : 0);
const BUTTONS = ['left', 'middle', 'right'];

export async function render(id) {
  const base = `/api/v1/browser/live/${encodeURIComponent(id)}`;
  let size = { width: 1280, height: 800 };
  let queue = [];
  let sending = false;

  // Inputs go out in order, batched while one request is on its way (mouse moves coalesce).
  async function flush() {
    if (sending || !queue.length) return;
    sending = true;
    const events = queue; queue = [];
    try {
      const r = await fetch(base + '/input', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': CSRF },
        body: JSON.stringify({ events }),
      });
      if (!r.ok && r.status !== 422) status.textContent = 'The live view has ended.';
    } catch (_) { status.textContent = 'Connection lost; retrying…'; }
    sending = false;
    flush();
  }
  function send(event) {
    const last = queue[queue.length - 1];
    if (event.type === 'mouse' && event.action === 'move' && last && last.type === 'mouse' && last.action === 'move') queue[queue.length - 1] = event;
    else queue.push(event);
    flush();
  }

  const screen = el('img', { id: 'live-screen', alt: 'The page of the live view', tabindex: '0', draggable: 'false' });
  const address = el('input', { id: 'live-address', type: 'text', 'aria-label': 'Address', spellcheck: 'false' });
  const tabs = el('div', { id: 'live-tabs', role: 'tablist' });
  const status = el('p', { id: 'live-status', role: 'status' }, 'Connecting…');
  const at = (e) => {
    const r = screen.getBoundingClientRect();
    return { x: (e.clientX - r.left) * size.width / r.width, y: (e.clientY - r.top) * size.height / r.height };
  };
  const mouse = (action) => (e) => {
    e.preventDefault();
    if (action === 'down') screen.focus();
    const p = at(e);
    send({ type: 'mouse', action, x: p.x, y: p.y, button: BUTTONS[e.button] || 'left', buttons: e.buttons, clicks: Math.max(1, e.detail || 1), modifiers: MODIFIERS(e) });
  };
  // Pointer events cover mouse, pen and touch alike (a touch is the left button).
  screen.addEventListener('pointerdown', (e) => { screen.setPointerCapture(e.pointerId); mouse('down')(e); });
  screen.addEventListener('pointerup', mouse('up'));
  screen.addEventListener('pointermove', mouse('move'));
  screen.addEventListener('contextmenu', (e) => e.preventDefault());
  screen.addEventListener('wheel', (e) => { e.preventDefault(); const p = at(e); send({ type: 'wheel', x: p.x, y: p.y, dx: e.deltaX, dy: e.deltaY }); }, { passive: false });
  const key = (action) => (e) => {
    // Ctrl/Cmd+V pastes through the paste event below; the composition of an input method
    // arrives as text.
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'v') return;
    if (e.isComposing || e.key === 'Process' || e.key === 'Unidentified') return;
    e.preventDefault();
    send({ type: 'key', action, key: e.key, code: e.code, modifiers: MODIFIERS(e) });
  };
  screen.addEventListener('keydown', key('down'));
  screen.addEventListener('keyup', key('up'));
  screen.addEventListener('paste', (e) => { e.preventDefault(); const text = e.clipboardData.getData('text'); if (text) send({ type: 'text', text }); });
  screen.addEventListener('compositionend', (e) => { if (e.data) send({ type: 'text', text: e.data }); });

  const go = (e) => { e.preventDefault(); send({ type: 'navigate', url: address.value }); screen.focus(); };
  const done = el('button', { id: 'live-done', type: 'button', on: { click: () => { send({ type: 'done' }); } } }, 'Done');
  const bar = el('form', { id: 'live-bar', on: { submit: go } },
    el('button', { id: 'live-back', type: 'button', title: 'Back', on: { click: () => send({ type: 'back' }) } }, '←'),
    el('button', { id: 'live-forward', type: 'button', title: 'Forward', on: { click: () => send({ type: 'forward' }) } }, '→'),
    el('button', { id: 'live-reload', type: 'button', title: 'Reload', on: { click: () => send({ type: 'reload' }) } }, '⟳'),
    address, el('button', { id: 'live-go', type: 'submit' }, 'Go'), done);

  const hint = el('p', { class: 'hint', id: 'live-hint' }, 'You drive this profile\'s browser; its runs wait until you press Done. What you type is not recorded.');
  const events = new EventSource(base + '/events');
  // Leaving the page closes the stream: the view ends soon after unless it is reopened.
  state.leave = () => events.close();
  events.addEventListener('frame', (m) => {
    const f = JSON.parse(m.data);
    size = { width: f.width, height: f.height };
    screen.src = 'data:image/jpeg;base64,' + f.data;
    screen.dataset.seq = f.seq;
    screen.dataset.width = f.width;
    screen.dataset.height = f.height;
    status.textContent = 'Live';
  });
  events.addEventListener('state', (m) => {
    const s = JSON.parse(m.data);
    // A run waits for this person (hand_over): Done lets it go on.
    if (s.run_id) {
      done.textContent = 'Continue';
      hint.textContent = `Run ${s.run_id} waits for you: ${s.reason}. Finish it here; the run goes on by itself when it sees the page it waits for, or when you press Continue.`;
    }
    if (document.activeElement !== address) address.value = s.url;
    tabs.replaceChildren(...s.tabs.map((t) => el('button', {
      type: 'button', role: 'tab', class: 'live-tab', 'aria-selected': String(t.id === s.active), title: t.url,
      on: { click: () => send({ type: 'tab', id: t.id }) },
    }, t.title || t.url || 'New tab')));
  });
  events.addEventListener('ended', (m) => {
    const r = JSON.parse(m.data).reason;
    status.textContent = `The live view has ended (${r}). The profile's runs go on.`;
    status.dataset.ended = r;
    events.close();
  });
  events.onerror = () => { if (!status.dataset.ended) status.textContent = 'Reconnecting…'; };

  return el('section', { id: 'live' }, el('h1', {}, 'Live view'), hint,
    bar, tabs, status, el('div', { class: 'live-frame' }, screen));
}
