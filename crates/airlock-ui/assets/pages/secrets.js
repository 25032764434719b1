// Secrets: the mounts this token can see, then a KV mount's folders with a search, then
// one secret (pages/kv.js). Routes:
//   #/secrets                         mounts
//   #/secrets/<mount>                 the mount's top folder
//   #/secrets/<mount>/list/<folder/>  a folder
//   #/secrets/<mount>/show/<path>     a secret          (kv.js)
//   #/secrets/<mount>/new/<folder/>   a new secret      (kv.js)

import { h, mount, note } from '../dom.js';
import * as api from '../api.js';
import * as kv from './kv.js';

export const page = { id: 'secrets', label: 'Secrets' };

/** The secret mounts the token may see: [{path, type, version, description}]. */
export async function mounts() {
  const r = await api.read('sys/internal/ui/mounts');
  const secret = (r && r.data && r.data.secret) || {};
  return Object.entries(secret)
    .map(([path, m]) => ({
      path: path.replace(/\/$/, ''),
      type: m.type,
      version: m.type === 'kv' ? ((m.options && m.options.version) || '1') : '',
      description: m.description || '',
    }))
    .filter((m) => m.type !== 'cubbyhole' && m.type !== 'identity' && m.type !== 'system')
    .sort((a, b) => a.path.localeCompare(b.path));
}

export async function mountInfo(path) {
  const all = await mounts();
  const m = all.find((x) => x.path === path);
  if (!m) throw new Error(`no secrets engine is mounted at ${path}/ (or this token cannot see it)`);
  return m;
}

export async function render(view, route, app) {
  const [mnt, action, rest] = route;
  if (!mnt) return renderMounts(view, app);
  const m = await mountInfo(mnt);
  if (action === 'show' || action === 'new') return kv.render(view, m, action, rest || '', app, crumbs);
  return renderFolder(view, m, action === 'list' ? (rest || '') : '', app);
}

async function renderMounts(view, app) {
  const all = await mounts();
  const rows = all.map((m) => h('tr',
    h('td', m.type === 'kv'
      ? h('a', { href: app.href('secrets', m.path) }, `${m.path}/`)
      : h('span', `${m.path}/`)),
    h('td', m.type === 'kv' ? `kv v${m.version}` : m.type),
    h('td.muted', m.description)));
  mount(view,
    h('h1', 'Secrets engines'),
    all.length
      ? h('table.list', h('thead', h('tr', h('th', 'Path'), h('th', 'Type'), h('th', 'Description'))), h('tbody', rows))
      : note('info', 'This token sees no secrets engines.'));
}

function crumbs(m, folder, app) {
  const parts = folder.split('/').filter(Boolean);
  const out = [h('a', { href: app.href('secrets') }, 'Secrets'), ' / ', h('a', { href: app.href('secrets', m.path) }, `${m.path}`)];
  let acc = '';
  for (const p of parts) {
    acc += `${p}/`;
    out.push(' / ', h('a', { href: app.href('secrets', m.path, 'list', acc) }, p));
  }
  return h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, out);
}

export function listPath(m, folder) {
  return m.version === '2' ? `${m.path}/metadata/${folder}` : `${m.path}/${folder}`;
}

/** Every key under `folder`, breadth first, at most `limit` entries. */
async function walk(m, folder, limit) {
  const out = [];
  const queue = [folder];
  while (queue.length && out.length < limit) {
    const f = queue.shift();
    const ks = await api.keys(listPath(m, f));
    for (const k of ks) {
      if (k.endsWith('/')) queue.push(f + k);
      else out.push(f + k);
      if (out.length >= limit) break;
    }
  }
  return out;
}

async function renderFolder(view, m, folder, app) {
  const entries = await api.keys(listPath(m, folder));
  const list = h('ul.tree');
  const status = h('p.muted', { 'aria-live': 'polite' });
  const search = h('input', {
    type: 'search', placeholder: 'Filter this folder, or press Enter to search below it',
    'aria-label': 'Search secrets',
  });

  function draw(items) {
    mount(list, items.map((k) => {
      const isFolder = k.endsWith('/');
      const href = isFolder
        ? app.href('secrets', m.path, 'list', folder + k)
        : app.href('secrets', m.path, 'show', folder + k);
      return h('li', { class: isFolder ? 'folder' : 'secret' }, h('a', { href }, k));
    }));
    if (!items.length) mount(list, h('li.muted', folder ? 'This folder is empty.' : 'No secrets yet.'));
  }

  search.addEventListener('input', () => {
    const q = search.value.toLowerCase();
    draw(entries.filter((k) => k.toLowerCase().includes(q)));
    mount(status);
  });
  search.addEventListener('keydown', async (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    const q = search.value.toLowerCase();
    mount(status, 'Searching…');
    const found = (await walk(m, folder, 5000)).filter((k) => k.toLowerCase().includes(q));
    // Full paths below this folder: shown relative to it, linked absolute.
    mount(list, found.map((k) => h('li.secret', h('a', { href: app.href('secrets', m.path, 'show', k) }, k.slice(folder.length)))));
    mount(status, `${found.length} secret${found.length === 1 ? '' : 's'} below ${folder || 'the top'} match.`);
  });

  draw(entries);
  mount(view,
    crumbs(m, folder, app),
    h('div.bar',
      h('h1', folder ? folder : `${m.path}/`),
      h('a.button', { href: app.href('secrets', m.path, 'new', folder) }, 'Create secret')),
    search, status, list);
}

