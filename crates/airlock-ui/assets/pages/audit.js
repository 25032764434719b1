// Audit: the log read back through the server's index (sys/airlock/audit/query, which
// needs sudo), with filters, newest first, a page at a time, and the hash chain's state.
// Filters stay in this page's memory, never in the address: a value searched for by its
// HMAC is sent to sys/audit-hash in a request body.

import { h, mount, field, note, when } from '../dom.js';
import * as api from '../api.js';

export const page = { id: 'audit', label: 'Audit' };

const FILTERS = [
  ['path_prefix', 'Path prefix', 'secret/data/app/'],
  ['operation', 'Operation', 'read, update, delete, list, inject, block…'],
  ['status', 'Status', '403'],
  ['display_name', 'Display name', 'userpass-alice'],
  ['accessor', 'Token accessor', 'the accessor, not the token'],
  ['remote_address', 'Remote address', '127.0.0.1'],
  ['agent', 'Broker agent', 'voice'],
  ['binding', 'Broker binding', 'openai'],
];

/** A datetime-local value → RFC 3339 (local time) or ''. */
function rfc3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

export function entryRow(e, onOpen) {
  const r = e.request || {};
  const b = e.broker || {};
  const status = e.type === 'broker' ? b.status : (e.response || {}).status;
  const op = e.type === 'broker' ? b.kind : r.operation;
  const path = e.type === 'broker' ? `${b.method || ''} ${b.host || ''}${b.path || ''}` : r.path;
  const who = e.type === 'broker' ? (b.agent || '') : ((e.auth || {}).display_name || '');
  return h('tr', { class: `entry ${e.type}${status >= 400 ? ' failed' : ''}` },
    // A broker event carries the time it happened; the entry, the time it was logged.
    h('td', h('button.link', { type: 'button', 'aria-label': `Entry ${e.chain ? e.chain.seq : ''}`, on: { click: onOpen } }, when(b.time || e.time))),
    h('td', e.type),
    h('td', op || ''),
    h('td.path', path || ''),
    h('td', status ? String(status) : ''),
    h('td', who),
    h('td', r.remote_address || ''));
}

function chainBadge(chain) {
  if (!chain) return null;
  return chain.intact
    ? h('span.status.live', `hash chain intact through entry ${chain.indexed_through}`)
    : h('span.status.destroyed', `hash chain broken at entry ${chain.broken_at}`);
}

export async function render(view) {
  const state = { stack: [], before: null };
  const inputs = {};
  const from = h('input', { type: 'datetime-local', 'aria-label': 'From' });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'To' });
  const type = h('select', { 'aria-label': 'Entry type' },
    ['', 'request', 'response', 'broker'].map((t) => h('option', { value: t }, t || 'any type')));
  const value = h('input', { type: 'password', autocomplete: 'off', placeholder: 'matched by its HMAC; never leaves this form in clear text except to sys/audit-hash' });
  const results = h('div', { 'aria-live': 'polite' });
  const chainEl = h('span');
  const verifyOut = h('span');

  for (const [k, label, ph] of FILTERS) {
    inputs[k] = h('input', { type: 'text', name: k, placeholder: ph, spellcheck: 'false', autocomplete: 'off' });
  }

  async function query() {
    const q = { limit: '50' };
    for (const [k] of FILTERS) if (inputs[k].value.trim()) q[k] = inputs[k].value.trim();
    if (type.value) q.type = type.value;
    if (from.value) q.from = rfc3339(from.value);
    if (to.value) q.to = rfc3339(to.value);
    if (q.operation && ['inject', 'block', 'scrub', 'tunnel', 'deny', 'forward'].includes(q.operation)) {
      q.kind = q.operation;
      delete q.operation;
      q.type = 'broker';
    }
    if (value.value) {
      const devs = await api.read('sys/audit');
      const dev = Object.keys((devs && devs.data) || devs || {}).map((k) => k.replace(/\/$/, ''))[0] || 'file';
      const r = await api.write(`sys/audit-hash/${dev}`, { input: value.value });
      q.hmac = r.data.hash;
    }
    if (state.before) q.before = state.before;
    return api.read('sys/airlock/audit/query', q);
  }

  async function draw() {
    mount(results, h('p.muted', 'Searching…'));
    try {
      const r = (await query()).data;
      mount(chainEl, chainBadge(r.chain));
      const detail = h('pre.entry-json', { hidden: true, tabindex: '-1' });
      const rows = r.entries.map((e) => entryRow(e, () => {
        detail.hidden = false;
        detail.textContent = JSON.stringify(e, null, 2);
        detail.focus();
      }));
      mount(results,
        rows.length
          ? h('table.list.audit', h('thead', h('tr', ['Time', 'Type', 'Operation', 'Path', 'Status', 'Who', 'Remote'].map((t) => h('th', t)))), h('tbody', rows))
          : note('info', 'No entries match.'),
        h('div.actions',
          state.stack.length ? h('button.secondary', { type: 'button', on: { click: () => { state.before = state.stack.pop(); draw(); } } }, 'Newer') : null,
          r.next ? h('button.secondary', { type: 'button', on: { click: () => { state.stack.push(state.before); state.before = r.next; draw(); } } }, 'Older') : null),
        detail);
    } catch (e) {
      mount(results, e instanceof api.ApiError && e.status === 403
        ? h('div.denied', h('h2', 'Permission denied'), h('p', 'Reading the audit log needs sudo on sys/airlock/audit/query.'))
        : note('error', e.message));
    }
  }

  const form = h('form.filters', {
    on: { submit: (e) => { e.preventDefault(); state.stack = []; state.before = null; draw(); } },
  },
  h('div.grid',
    field('From', from), field('To', to), field('Type', type),
    FILTERS.map(([k, label]) => field(label, inputs[k])),
    field('Value', value, 'Entries holding this value (as an HMAC).')),
  h('div.actions', h('button', { type: 'submit' }, 'Search'),
    h('button.secondary', { type: 'reset', on: { click: () => setTimeout(() => { state.stack = []; state.before = null; draw(); }) } }, 'Clear')));

  // On a phone the filters start folded, so the entries are on the first screen.
  const filters = h('details.filters', { open: !matchMedia('(max-width: 700px)').matches },
    h('summary', 'Filters'), form);
  mount(view,
    h('div.bar', h('h1', 'Audit log'), chainEl,
      h('button.secondary.small', {
        type: 'button', on: {
          click: async () => {
            mount(verifyOut, 'Verifying the whole file…');
            try {
              const r = (await api.write('sys/airlock/audit/verify', {})).data;
              mount(verifyOut, r.intact ? h('span.status.live', `file verified: ${r.entries} entries`) : h('span.status.destroyed', r.error));
            } catch (e) { mount(verifyOut, h('span.error', e.message)); }
          },
        },
      }, 'Verify file now'), verifyOut),
    filters, results);
  await draw();
}
