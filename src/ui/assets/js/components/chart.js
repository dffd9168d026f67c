// A small bar chart.

import { el, when } from '../lib.js';

/// A small bar chart (SVG made with DOM calls: nothing from the data becomes markup).
export function bars(id, buckets, key, title) {
  const NS = 'http://www.w3.org/2000/svg';
  const w = 300, h = 60, max = Math.max(1, ...buckets.map((b) => b[key]));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('id', id);
  svg.setAttribute('role', 'img');
  const total = buckets.reduce((n, b) => n + b[key], 0);
  svg.setAttribute('aria-label', `${title}: ${total} in all`);
  const bw = w / buckets.length;
  buckets.forEach((b, i) => {
    const bh = Math.round((b[key] / max) * (h - 2));
    const r = document.createElementNS(NS, 'rect');
    r.setAttribute('x', String(i * bw + 0.5));
    r.setAttribute('y', String(h - bh));
    r.setAttribute('width', String(Math.max(1, bw - 1)));
    r.setAttribute('height', String(bh));
    r.setAttribute('class', key);
    const t = document.createElementNS(NS, 'title');
    t.textContent = `${when(b.at)}: ${b[key]}`;
    r.append(t);
    svg.append(r);
  });
  return el('figure', { class: 'chartbox' }, svg, el('figcaption', {}, `${title} (${total})`));
}
