// One KV secret. Values stay on the server until revealed: the page reads keys and value
// fingerprints (a masked read), and each Reveal or Copy is a read of that one field, which
// the audit log records as a read. Edits are merge patches with check-and-set on the
// version the form was opened on, so a concurrent edit is reported, never overwritten.

import { h, mount, field, note, when, confirmDialog } from '../dom.js';
import * as api from '../api.js';

const MASK = '••••••••';

function show(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function dataPath(m, path) {
  return m.version === '2' ? `${m.path}/data/${path}` : `${m.path}/${path}`;
}

/** Reads one field of one version (an audited read). */
async function readField(m, path, version, key) {
  if (m.version !== '2') {
    const r = await api.read(dataPath(m, path));
    return r.data[key];
  }
  const r = await api.read(dataPath(m, path), { version: String(version), field: key });
  return r.data.data[key];
}

/** A masked value with Reveal and Copy; `load` fetches the value when asked. */
function secretValue(label, load) {
  const out = h('code.value', MASK);
  let value = null;
  const reveal = h('button.small.secondary', { type: 'button', 'aria-label': `Reveal ${label}` }, 'Reveal');
  const copy = h('button.small.secondary', { type: 'button', 'aria-label': `Copy ${label}` }, 'Copy');
  async function get() {
    if (value === null) value = show(await load());
    return value;
  }
  reveal.addEventListener('click', async () => {
    try {
      if (reveal.textContent === 'Hide') {
        mount(out, MASK);
        out.classList.remove('shown');
        reveal.textContent = 'Reveal';
        reveal.setAttribute('aria-label', `Reveal ${label}`);
        return;
      }
      mount(out, await get());
      out.classList.add('shown');
      reveal.textContent = 'Hide';
      reveal.setAttribute('aria-label', `Hide ${label}`);
    } catch (e) {
      mount(out, h('span.error', e.message));
    }
  });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(await get());
      copy.textContent = 'Copied';
      setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    } catch (e) {
      copy.textContent = 'Copy failed';
    }
  });
  return h('div.secret-value', out, h('span.actions', reveal, copy));
}

function rowsEditor(existing) {
  // existing: [key] whose values are left unchanged unless typed.
  const body = h('tbody');
  function row(key, isNew) {
    const k = h('input', { type: 'text', value: key, 'aria-label': 'Key', required: true, spellcheck: 'false', readonly: !isNew });
    const v = h('textarea', {
      rows: 1, 'aria-label': `Value of ${key || 'new key'}`, spellcheck: 'false', autocomplete: 'off',
      placeholder: isNew ? 'value' : 'unchanged',
    });
    const rm = h('input', { type: 'checkbox', 'aria-label': `Remove ${key || 'this key'}` });
    const tr = h('tr', { 'data-new': isNew ? '1' : '' }, h('td', k), h('td', v),
      h('td.center', isNew
        ? h('button.small.secondary', { type: 'button', 'aria-label': 'Drop this row', on: { click: () => tr.remove() } }, '✕')
        : h('label.inline', rm, ' remove')));
    tr._get = () => ({ key: k.value.trim(), value: v.value, remove: rm.checked, isNew, touched: v.value !== '' });
    return tr;
  }
  for (const key of existing) body.appendChild(row(key, false));
  if (!existing.length) body.appendChild(row('', true));
  const table = h('table.edit', h('thead', h('tr', h('th', 'Key'), h('th', 'Value'), h('th', ''))), body);
  const add = h('button.secondary.small', { type: 'button', on: { click: () => { body.appendChild(row('', true)); body.lastChild.querySelector('input').focus(); } } }, 'Add key');
  return { el: h('div', table, add), rows: () => [...body.children].map((tr) => tr._get()) };
}

async function renderNew(view, m, folder, app, crumbs) {
  const pathInput = h('input', { type: 'text', name: 'path', value: folder, required: true, spellcheck: 'false', autocomplete: 'off' });
  const editor = rowsEditor([]);
  const msg = h('div');
  const form = h('form', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        const path = pathInput.value.trim().replace(/^\/+/, '');
        if (!path || path.endsWith('/')) return mount(msg, note('error', 'Give the secret a name (not ending in /).'));
        const data = {};
        for (const r of editor.rows()) {
          if (!r.key) continue;
          if (r.key in data) return mount(msg, note('error', `The key ${r.key} appears twice.`));
          data[r.key] = r.value;
        }
        try {
          if (m.version === '2') await api.write(dataPath(m, path), { data, options: { cas: 0 } });
          else await api.write(dataPath(m, path), data);
          app.after('ok', `Created ${path}.`);
          app.go('secrets', m.path, 'show', path);
        } catch (err) {
          const exists = /check-and-set/.test(err.message);
          mount(msg, note('error', exists ? `${path} already exists: open it to add a version.` : err.message));
        }
      },
    },
  }, field('Path', pathInput, `Below ${m.path}/. Folders are made by slashes.`), editor.el, msg,
  h('div.actions', h('a.button.secondary', { href: app.href('secrets', m.path, 'list', folder) }, 'Cancel'), h('button', { type: 'submit' }, 'Save')));
  mount(view, crumbs(m, folder, app), h('h1', 'Create secret'), form);
}

/** `crumbs(m, folder, app)` is the secrets page's breadcrumb (passed in: this module
 * imports nothing of the page that routes to it). */
export async function render(view, m, action, path, app, crumbs) {
  if (action === 'new') return renderNew(view, m, path, app, crumbs);
  if (m.version !== '2') return renderV1(view, m, path, app, crumbs);
  const meta = (await api.read(`${m.path}/metadata/${path}`)).data;
  const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  const state = { tab: 'secret', version: meta.current_version };
  const tabs = h('div.tabs', { role: 'tablist', 'aria-label': 'Secret' });
  const panel = h('div', { role: 'tabpanel' });

  function drawTabs() {
    const t = [['secret', 'Secret'], ['versions', `Versions (${Object.keys(meta.versions || {}).length})`], ['metadata', 'Metadata']];
    mount(tabs, t.map(([id, label]) => h('button', {
      type: 'button', role: 'tab', 'aria-selected': String(state.tab === id),
      on: { click: () => { state.tab = id; drawTabs(); draw(); } },
    }, label)));
  }

  async function reload() {
    Object.assign(meta, (await api.read(`${m.path}/metadata/${path}`)).data);
  }

  async function draw() {
    mount(panel, h('p.muted', 'Loading…'));
    try {
      if (state.tab === 'secret') await drawSecret();
      else if (state.tab === 'versions') drawVersions();
      else drawMetadata();
    } catch (e) {
      mount(panel, app.failure(e));
    }
  }

  async function versionAction(kind, v) {
    const verbs = { delete: 'Delete', undelete: 'Undelete', destroy: 'Destroy' };
    const warn = kind === 'destroy' ? ` Version ${v}'s data will be gone for good.` : '';
    if (kind !== 'undelete' && !(await confirmDialog(`${verbs[kind]} version ${v} of ${path}?${warn}`, verbs[kind]))) return;
    await api.write(`${m.path}/${kind}/${path}`, { versions: [Number(v)] });
    await reload();
    app.flash('ok', `${verbs[kind]}d version ${v}.`);
    drawTabs();
    draw();
  }

  async function drawSecret() {
    const v = state.version;
    const vm = (meta.versions || {})[v] || {};
    const picker = h('select', { 'aria-label': 'Version', on: { change: (e) => { state.version = Number(e.target.value); draw(); } } },
      Object.keys(meta.versions || {}).map(Number).sort((a, b) => b - a)
        .map((n) => h('option', { value: n, selected: n === v ? 'selected' : null }, `Version ${n}${n === meta.current_version ? ' (current)' : ''}`)));
    const head = h('div.bar', picker, h('span.muted', vm.created_time ? `created ${when(vm.created_time)}` : ''));
    if (vm.destroyed || (vm.deletion_time && new Date(vm.deletion_time) <= new Date())) {
      mount(panel, head, note('info', vm.destroyed ? `Version ${v} was destroyed.` : `Version ${v} was deleted ${when(vm.deletion_time)}.`),
        vm.destroyed ? null : h('button', { type: 'button', on: { click: () => versionAction('undelete', v) } }, 'Undelete'));
      return;
    }
    const r = (await api.read(dataPath(m, path), { version: String(v), mask: 'true' })).data;
    const ks = Object.keys(r.data || {}).sort();
    const rows = ks.map((k) => h('tr', h('th', { scope: 'row' }, k), h('td', secretValue(k, () => readField(m, path, v, k)))));
    const current = v === meta.current_version;
    mount(panel, head,
      h('table.kv', h('tbody', rows.length ? rows : h('tr', h('td.muted', 'No keys.')))),
      h('div.actions',
        current ? h('button', { type: 'button', on: { click: () => drawEdit(ks) } }, 'Edit') : null,
        current ? null : h('button', { type: 'button', on: { click: () => rollback(v) } }, `Roll back to version ${v}`),
        h('button.secondary', { type: 'button', on: { click: () => versionAction('delete', v) } }, 'Delete version'),
        h('button.danger', { type: 'button', on: { click: () => versionAction('destroy', v) } }, 'Destroy version')));
  }

  function drawEdit(ks) {
    const editor = rowsEditor(ks);
    const base = meta.current_version;
    const msg = h('div');
    const form = h('form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          const patch = {};
          for (const r of editor.rows()) {
            if (!r.key) continue;
            if (r.remove) patch[r.key] = null;
            else if (r.isNew || r.touched) patch[r.key] = r.value;
          }
          if (!Object.keys(patch).length) return mount(msg, note('info', 'Nothing changed.'));
          try {
            await api.patch(dataPath(m, path), { data: patch, options: { cas: base } });
            await reload();
            state.version = meta.current_version;
            app.flash('ok', `Saved version ${meta.current_version}.`);
            drawTabs();
            draw();
          } catch (err) {
            if (/check-and-set/.test(err.message)) {
              mount(msg, note('error', `Conflict: ${path} changed since you opened it (you edited version ${base}). Nothing was saved. Reload to see the new version, then edit again.`),
                h('button.secondary', { type: 'button', on: { click: async () => { await reload(); state.version = meta.current_version; drawTabs(); draw(); } } }, 'Reload'));
            } else {
              mount(msg, app.failure(err));
            }
          }
        },
      },
    }, h('p.muted', `Editing version ${base}. Leave a value empty to keep it.`), editor.el, msg,
    h('div.actions', h('button.secondary', { type: 'button', on: { click: () => draw() } }, 'Cancel'), h('button', { type: 'submit' }, 'Save')));
    mount(panel, form);
    form.querySelector('textarea')?.focus();
  }

  async function rollback(v) {
    if (!(await confirmDialog(`Write version ${v}'s data as a new version of ${path}?`, 'Roll back'))) return;
    try {
      const old = (await api.read(dataPath(m, path), { version: String(v) })).data.data;
      await api.write(dataPath(m, path), { data: old, options: { cas: meta.current_version } });
      await reload();
      state.version = meta.current_version;
      app.flash('ok', `Rolled back: version ${meta.current_version} has version ${v}'s data.`);
      drawTabs();
      draw();
    } catch (e) {
      app.flash('error', e.message);
    }
  }

  function drawVersions() {
    const nums = Object.keys(meta.versions || {}).map(Number).sort((a, b) => b - a);
    const status = (vm) => vm.destroyed ? 'destroyed' : (vm.deletion_time && new Date(vm.deletion_time) <= new Date() ? 'deleted' : 'live');
    const rows = nums.map((n) => {
      const vm = meta.versions[n];
      const st = status(vm);
      return h('tr',
        h('td', h('button.link', { type: 'button', on: { click: () => { state.tab = 'secret'; state.version = n; drawTabs(); draw(); } } }, `v${n}`), n === meta.current_version ? h('span.badge', 'current') : null),
        h('td', when(vm.created_time)),
        h('td', h('span', { class: `status ${st}` }, st)),
        h('td', h('span.row-actions',
          st === 'live' ? h('button.small.secondary', { type: 'button', on: { click: () => versionAction('delete', n) } }, 'Delete') : null,
          st === 'deleted' ? h('button.small.secondary', { type: 'button', on: { click: () => versionAction('undelete', n) } }, 'Undelete') : null,
          st !== 'destroyed' ? h('button.small.danger', { type: 'button', on: { click: () => versionAction('destroy', n) } }, 'Destroy') : null)));
    });
    const live = nums.filter((n) => status(meta.versions[n]) === 'live');
    const sel = (id, v) => h('select', { id, 'aria-label': id === 'diff-a' ? 'Compare from' : 'Compare to' },
      live.map((n) => h('option', { value: n, selected: n === v ? 'selected' : null }, `v${n}`)));
    const a = sel('diff-a', live[1] ?? live[0]);
    const b = sel('diff-b', live[0]);
    const out = h('div.diff');
    mount(panel,
      h('table.list', h('thead', h('tr', h('th', 'Version'), h('th', 'Created'), h('th', 'Status'), h('th', ''))), h('tbody', rows)),
      live.length >= 2 ? h('section',
        h('h2', 'Compare versions'),
        h('div.bar', a, h('span', 'with'), b, h('button', { type: 'button', on: { click: () => diff(Number(a.value), Number(b.value), out) } }, 'Compare')),
        out) : null);
  }

  async function diff(va, vb, out) {
    const [ra, rb] = await Promise.all([va, vb].map((v) => api.read(dataPath(m, path), { version: String(v), mask: 'true' })));
    const fa = ra.data.fingerprints || {};
    const fb = rb.data.fingerprints || {};
    const all = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].sort();
    const cell = (v, f, k) => (f[k] === undefined ? h('td.muted', '—') : h('td', secretValue(`${k} in v${v}`, () => readField(m, path, v, k))));
    const rows = all.map((k) => {
      const st = fa[k] === undefined ? 'added' : fb[k] === undefined ? 'removed' : fa[k] === fb[k] ? 'same' : 'changed';
      return h('tr', { class: `diff-${st}` }, h('th', { scope: 'row' }, k), h('td', h('span', { class: `status ${st}` }, st)), cell(va, fa, k), cell(vb, fb, k));
    });
    mount(out, h('table.list.diff', h('thead', h('tr', h('th', 'Key'), h('th', 'Change'), h('th', `v${va}`), h('th', `v${vb}`))), h('tbody', rows)));
  }

  function drawMetadata() {
    const maxV = h('input', { type: 'number', min: 0, value: meta.max_versions || 0 });
    const cas = h('input', { type: 'checkbox', checked: meta.cas_required, id: 'cas-required' });
    const dva = h('input', { type: 'text', value: meta.delete_version_after || '0s', spellcheck: 'false' });
    const custom = rowsEditorPlain(meta.custom_metadata || {});
    const msg = h('div');
    mount(panel, h('form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          try {
            await api.write(`${m.path}/metadata/${path}`, {
              max_versions: Number(maxV.value) || 0, cas_required: cas.checked,
              delete_version_after: dva.value.trim() || '0s', custom_metadata: custom.value(),
            });
            await reload();
            app.flash('ok', 'Metadata saved.');
            draw();
          } catch (err) { mount(msg, app.failure(err)); }
        },
      },
    },
    field('Maximum versions', maxV, '0: the mount\'s setting.'),
    h('div.check', cas, h('label', { for: 'cas-required' }, 'Require check-and-set on every write')),
    field('Delete versions after', dva, 'A duration such as 720h; 0s keeps them.'),
    h('h2', 'Custom metadata'), custom.el, msg,
    h('div.actions', h('button', { type: 'submit' }, 'Save metadata'))),
    h('section.danger-zone', h('h2', 'Delete this secret'),
      h('p', 'Removes every version and the metadata. This cannot be undone.'),
      h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Delete ${path} with all its versions?`, 'Delete everything'))) return;
            await api.remove(`${m.path}/metadata/${path}`);
            app.after('ok', `Deleted ${path}.`);
            app.go('secrets', m.path, 'list', folder);
          },
        },
      }, 'Delete all versions')));
  }

  mount(view, crumbs(m, folder, app), h('h1', path.slice(folder.length)), tabs, panel);
  drawTabs();
  await draw();
}

/** Key/value rows for plain (non-secret) values: custom metadata. */
function rowsEditorPlain(obj) {
  const body = h('tbody');
  function row(k, v) {
    const tr = h('tr', h('td', h('input', { type: 'text', value: k, 'aria-label': 'Metadata key' })),
      h('td', h('input', { type: 'text', value: v, 'aria-label': 'Metadata value' })),
      h('td.center', h('button.small.secondary', { type: 'button', 'aria-label': 'Drop this row', on: { click: () => tr.remove() } }, '✕')));
    return tr;
  }
  for (const [k, v] of Object.entries(obj)) body.appendChild(row(k, v));
  return {
    el: h('div', h('table.edit', body), h('button.secondary.small', { type: 'button', on: { click: () => body.appendChild(row('', '')) } }, 'Add metadata')),
    value: () => Object.fromEntries([...body.children].map((tr) => [...tr.querySelectorAll('input')].map((i) => i.value.trim())).filter(([k]) => k)),
  };
}

async function renderV1(view, m, path, app, crumbs) {
  const folder = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  // KV v1 has no masked read: the page holds the keys only, and reads again to reveal.
  const r = await api.read(dataPath(m, path));
  const ks = Object.keys(r.data || {}).sort();
  const rows = ks.map((k) => h('tr', h('th', { scope: 'row' }, k), h('td', secretValue(k, () => readField(m, path, 0, k)))));
  mount(view, crumbs(m, folder, app), h('h1', path.slice(folder.length)), h('p.muted', 'KV version 1: no versions.'),
    h('table.kv', h('tbody', rows)),
    h('div.actions', h('button.danger', {
      type: 'button', on: {
        click: async () => {
          if (!(await confirmDialog(`Delete ${path}?`, 'Delete'))) return;
          await api.remove(dataPath(m, path));
          app.after('ok', `Deleted ${path}.`);
          app.go('secrets', m.path, 'list', folder);
        },
      },
    }, 'Delete')));
}
