// Leases: browse by prefix (mount, then role, then lease ids; sys/leases/lookup needs
// sudo), each lease's time left, renew, revoke, and revoke everything under a prefix.
//   #/leases                 the top (mounts that issued leases)
//   #/leases/<prefix/>       a prefix

import { h, mount, note, confirmDialog, duration, when } from '../dom.js';
import * as api from '../api.js';

export const page = { id: 'leases', label: 'Leases' };

export async function render(view, route, app) {
  const prefix = route[0] || '';
  const ks = await api.keys(`sys/leases/lookup/${prefix}`);
  const folders = ks.filter((k) => k.endsWith('/'));
  const ids = ks.filter((k) => !k.endsWith('/'));
  const crumbs = [h('a', { href: app.href('leases') }, 'Leases')];
  let acc = '';
  for (const p of prefix.split('/').filter(Boolean)) {
    acc += `${p}/`;
    crumbs.push(' / ', h('a', { href: app.href('leases', acc) }, p));
  }
  const table = h('tbody');
  const rows = await Promise.all(ids.slice(0, 200).map(async (k) => {
    const id = prefix + k;
    try {
      const d = (await api.write('sys/leases/lookup', { lease_id: id })).data;
      return { id, d };
    } catch (e) {
      return { id, err: e.message };
    }
  }));
  for (const { id, d, err } of rows) {
    const left = h('td', err ? h('span.error', err) : (d.ttl ? duration(d.ttl) : 'expired'));
    const tr = h('tr', h('td.mono.path', id.slice(prefix.length)), left,
      h('td', d ? when(d.expire_time) : ''),
      h('td', h('span.row-actions',
        d && d.renewable ? h('button.small.secondary', {
          type: 'button', on: {
            click: async () => {
              try {
                const r = await api.write('sys/leases/renew', { lease_id: id });
                mount(left, duration(r.lease_duration));
                app.flash('ok', `Renewed for ${duration(r.lease_duration)}.`);
              } catch (e) { app.flash('error', e.message); }
            },
          },
        }, 'Renew') : null,
        h('button.small.danger', {
          type: 'button', on: {
            click: async () => {
              if (!(await confirmDialog(`Revoke ${id}? What it granted stops working.`, 'Revoke'))) return;
              try {
                await api.write('sys/leases/revoke', { lease_id: id });
                tr.remove();
                app.flash('ok', 'Lease revoked.');
              } catch (e) { app.flash('error', e.message); }
            },
          },
        }, 'Revoke'))));
    table.appendChild(tr);
  }
  mount(view,
    prefix ? h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, crumbs) : null,
    h('div.bar', h('h1', prefix || 'Leases'),
      prefix ? h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Revoke every lease under ${prefix}?`, 'Revoke all'))) return;
            try {
              await api.write(`sys/leases/revoke-prefix/${prefix.replace(/\/+$/, "")}`, {});
              app.after('ok', `Revoked every lease under ${prefix}.`);
              app.go('leases', prefix.split('/').filter(Boolean).slice(0, -1).join('/') + (prefix.split('/').filter(Boolean).length > 1 ? '/' : ''));
            } catch (e) { app.flash('error', e.message); }
          },
        },
      }, 'Revoke prefix') : null),
    folders.length ? h('ul.tree', folders.map((f) => h('li.folder', h('a', { href: app.href('leases', prefix + f) }, f)))) : null,
    ids.length
      ? h('table.list', h('thead', h('tr', h('th', 'Lease'), h('th', 'Time left'), h('th', 'Expires'), h('th', ''))), table)
      : (folders.length ? null : note('info', prefix ? 'No leases under this prefix.' : 'No leases.')),
    ids.length > 200 ? note('info', `Showing 200 of ${ids.length} leases.`) : null);
}
