// Events: changes as they happen (KV writes, policies, mounts, leases, broker bindings and
// agents), followed with the server's long poll (sys/airlock/events). Events name paths and
// versions, never values. Each event is shown only if this token may read its path.

import { h, mount, field, note } from '../dom.js';
import * as api from '../api.js';

export const page = { id: 'events', label: 'Events' };

export async function render(view) {
  const list = h('tbody');
  const status = h('span.muted', { 'aria-live': 'polite' });
  const filter = h('input', { type: 'text', name: 'filter', spellcheck: 'false', placeholder: 'data_path contains "secret/data/app"' });
  let generation = 0;

  async function follow() {
    const mine = ++generation;
    mount(list);
    mount(status, 'Starting…');
    // Where the log is now: events after this cursor are the ones this page shows.
    let since;
    try {
      since = (await api.read('sys/airlock/events', { wait: '0s', limit: '1' })).data.next;
    } catch (e) {
      mount(status, note('error', e.message));
      return;
    }
    mount(status, 'Following; no events since this page opened.');
    while (mine === generation && view.isConnected) {
      const q = { wait: '20s', limit: '100', since: String(since) };
      if (filter.value.trim()) q.filter = filter.value.trim();
      let r;
      try {
        r = (await api.read('sys/airlock/events', q)).data;
      } catch (e) {
        if (mine !== generation) return;
        mount(status, note('error', e.message));
        return;
      }
      if (mine !== generation || !view.isConnected) return;
      for (const ev of r.events || []) {
        list.prepend(h('tr',
          h('td', new Date(ev.time || Date.now()).toLocaleTimeString()),
          h('td', ev.event_type || ''),
          h('td.path', ev.data_path || ev.path || ''),
          h('td', ev.operation || ''),
          h('td', ev.current_version !== undefined ? String(ev.current_version) : '')));
        while (list.children.length > 500) list.lastChild.remove();
      }
      since = r.next ?? since;
      mount(status, `Following; ${list.children.length} event${list.children.length === 1 ? '' : 's'} since this page opened.`);
    }
  }

  mount(view,
    h('h1', 'Events'),
    h('p.muted', 'Changes from now on: writes, deletes, policies, mounts, leases and broker settings. Paths and versions only, never values.'),
    h('form.inline-form', { on: { submit: (e) => { e.preventDefault(); follow(); } } },
      field('Filter', filter), h('button', { type: 'submit' }, 'Apply')),
    status,
    h('table.list.events', h('thead', h('tr', ['Time', 'Event', 'Path', 'Operation', 'Version'].map((t) => h('th', t)))), list));
  follow();
}
