// Access: auth methods (enable, list) and their roles or users with create/edit forms, and
// tokens by accessor (look up, revoke).
//   #/access                          methods and the token tools
//   #/access/<mount>                  a method's roles or users
//   #/access/<mount>/<role>           one role (edit); "+new" creates

import { h, mount, field, note, confirmDialog, duration, when } from '../dom.js';
import * as api from '../api.js';

export const page = { id: 'access', label: 'Access' };

// Per method type: where its roles live and the fields its form shows. Kinds: list
// (comma-separated → array), text, number, bool, json, secret (write-only).
const COMMON = [
  ['token_policies', 'Token policies', 'list'],
  ['token_ttl', 'Token TTL', 'text'],
  ['token_max_ttl', 'Token max TTL', 'text'],
  ['token_bound_cidrs', 'Token bound CIDRs', 'list'],
];
const METHODS = {
  approle: {
    noun: 'role', list: 'role', fields: [
      ['bind_secret_id', 'Require a secret ID', 'bool'],
      ['secret_id_ttl', 'Secret ID TTL', 'text'],
      ['secret_id_num_uses', 'Secret ID uses (0: unlimited)', 'number'],
      ['secret_id_bound_cidrs', 'Secret ID bound CIDRs', 'list'],
      ...COMMON],
  },
  userpass: {
    noun: 'user', list: 'users', fields: [['password', 'Password (leave empty to keep)', 'secret'], ...COMMON],
  },
  jwt: {
    noun: 'role', list: 'role', fields: [
      ['role_type', 'Role type (jwt or oidc)', 'text'],
      ['user_claim', 'User claim', 'text'],
      ['bound_audiences', 'Bound audiences', 'list'],
      ['bound_subject', 'Bound subject', 'text'],
      ['bound_claims', 'Bound claims (JSON)', 'json'],
      ['allowed_redirect_uris', 'Allowed redirect URIs', 'list'],
      ['oidc_scopes', 'OIDC scopes', 'list'],
      ...COMMON],
  },
  kubernetes: {
    noun: 'role', list: 'role', fields: [
      ['bound_service_account_names', 'Service account names', 'list'],
      ['bound_service_account_namespaces', 'Namespaces', 'list'],
      ['audience', 'Audience', 'text'],
      ...COMMON],
  },
};
METHODS.oidc = METHODS.jwt;

export async function render(view, route, app) {
  const [mnt, role] = route;
  if (!mnt) return renderMethods(view, app);
  const methods = (await api.read('sys/auth')).data;
  const m = methods[`${mnt}/`];
  if (!m) throw new Error(`no auth method at auth/${mnt}/`);
  const spec = METHODS[m.type];
  if (!spec) {
    mount(view, h('h1', `auth/${mnt}/`), note('info', `The ${m.type} method has no roles to manage here.`));
    return;
  }
  if (role) return renderRole(view, mnt, m, spec, role === '+new' ? '' : role, app);
  const names = await api.keys(`auth/${mnt}/${spec.list}`);
  mount(view,
    h('nav.crumbs', h('a', { href: app.href('access') }, 'Access'), ' / ', `auth/${mnt}/`),
    h('div.bar', h('h1', `${m.type} at auth/${mnt}/`), h('a.button', { href: app.href('access', mnt, '+new') }, `Create ${spec.noun}`)),
    names.length
      ? h('ul.tree', names.map((n) => h('li', h('a', { href: app.href('access', mnt, n) }, n))))
      : note('info', `No ${spec.noun}s yet.`));
}

async function renderMethods(view, app) {
  const methods = (await api.read('sys/auth')).data;
  const rows = Object.entries(methods).sort().map(([path, m]) => h('tr',
    h('td', METHODS[m.type] ? h('a', { href: app.href('access', path.replace(/\/$/, '')) }, `auth/${path}`) : `auth/${path}`),
    h('td', m.type), h('td.muted', m.description || ''), h('td.mono', m.accessor || '')));
  const type = h('select', { 'aria-label': 'Method type' }, ['userpass', 'approle', 'jwt', 'oidc', 'kubernetes'].map((t) => h('option', { value: t }, t)));
  const path = h('input', { type: 'text', placeholder: 'the type', spellcheck: 'false' });
  const msg = h('div');
  mount(view,
    h('h1', 'Auth methods'),
    h('table.list', h('thead', h('tr', h('th', 'Path'), h('th', 'Type'), h('th', 'Description'), h('th', 'Accessor'))), h('tbody', rows)),
    h('section', h('h2', 'Enable a method'),
      h('form.inline-form', {
        on: {
          submit: async (e) => {
            e.preventDefault();
            const p = (path.value.trim() || type.value).replace(/^\/+|\/+$/g, '');
            try {
              await api.write(`sys/auth/${p}`, { type: type.value });
              app.after('ok', `Enabled ${type.value} at auth/${p}/.`);
              app.go('access', p);
            } catch (err) { mount(msg, app.failure(err)); }
          },
        },
      }, field('Type', type), field('Path', path), h('button', { type: 'submit' }, 'Enable')), msg),
    tokenTools());
}

function tokenTools() {
  const accessor = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', required: true });
  const out = h('div', { 'aria-live': 'polite' });
  async function lookup(e) {
    e.preventDefault();
    try {
      const d = (await api.write('auth/token/lookup-accessor', { accessor: accessor.value.trim() })).data;
      mount(out, h('table.kv', h('tbody',
        [['Display name', d.display_name], ['Policies', (d.policies || []).join(', ')], ['Created', when(new Date(d.creation_time * 1000).toISOString())],
          ['Expires', d.expire_time ? when(d.expire_time) : 'never'], ['TTL left', d.ttl ? duration(d.ttl) : '—'], ['Path', d.path], ['Type', d.type], ['Renewable', String(d.renewable)]]
          .map(([k, v]) => h('tr', h('th', { scope: 'row' }, k), h('td', v ?? ''))))),
      h('div.actions', h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Revoke the token with accessor ${accessor.value.trim()} and its children?`, 'Revoke'))) return;
            try {
              await api.write('auth/token/revoke-accessor', { accessor: accessor.value.trim() });
              mount(out, note('ok', 'Token revoked.'));
            } catch (err) { mount(out, note('error', err.message)); }
          },
        },
      }, 'Revoke token')));
    } catch (err) {
      mount(out, note('error', err.status === 400 ? 'No token has this accessor (or it expired).' : err.message));
    }
  }
  return h('section', h('h2', 'Tokens'),
    h('form.inline-form', { on: { submit: lookup } }, field('Accessor', accessor), h('button', { type: 'submit' }, 'Look up')), out);
}

function control(kind, v) {
  if (kind === 'bool') return h('input', { type: 'checkbox', checked: !!v });
  if (kind === 'json') return h('textarea', { rows: 3, spellcheck: 'false', value: v && Object.keys(v).length ? JSON.stringify(v, null, 2) : '' });
  if (kind === 'secret') return h('input', { type: 'password', autocomplete: 'new-password' });
  if (kind === 'number') return h('input', { type: 'number', value: v ?? '' });
  const text = Array.isArray(v) ? v.join(', ') : (v ?? '');
  return h('input', { type: 'text', value: text === 0 ? '0' : String(text), spellcheck: 'false', autocomplete: 'off' });
}

function valueOf(kind, el) {
  if (kind === 'bool') return el.checked;
  if (kind === 'list') return el.value.split(',').map((s) => s.trim()).filter(Boolean);
  if (kind === 'number') return el.value === '' ? undefined : Number(el.value);
  if (kind === 'json') return el.value.trim() ? JSON.parse(el.value) : undefined;
  return el.value.trim() === '' ? undefined : el.value.trim();
}

async function renderRole(view, mnt, m, spec, name, app) {
  // A new role starts from the method's defaults (an AppRole role requires a secret ID).
  let cur = m.type === 'approle' ? { bind_secret_id: true } : {};
  if (name) cur = (await api.read(`auth/${mnt}/${spec.list}/${name}`)).data || {};
  const nameInput = h('input', { type: 'text', name: 'name', value: name, readonly: !!name, required: true, spellcheck: 'false' });
  const controls = spec.fields.map(([k, label, kind]) => {
    let v = cur[k];
    if ((k.endsWith('ttl')) && typeof v === 'number') v = v ? `${v}s` : '';
    const el = control(kind, v);
    el.name = k;
    return { k, kind, el, f: kind === 'bool' ? h('div.check', el, h('label', { for: el.id || (el.id = `c-${k}`) }, label)) : field(label, el) };
  });
  const msg = h('div');
  mount(view,
    h('nav.crumbs', h('a', { href: app.href('access') }, 'Access'), ' / ', h('a', { href: app.href('access', mnt) }, `auth/${mnt}/`), ' / ', name || 'new'),
    h('h1', name ? `${spec.noun[0].toUpperCase()}${spec.noun.slice(1)} ${name}` : `Create ${spec.noun}`),
    h('form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          const n = nameInput.value.trim();
          const body = {};
          try {
            for (const c of controls) {
              const v = valueOf(c.kind, c.el);
              if (v !== undefined) body[c.k] = v;
            }
          } catch { return mount(msg, note('error', 'Bound claims must be a JSON object.')); }
          try {
            await api.write(`auth/${mnt}/${spec.list}/${n}`, body);
            app.after('ok', `Saved ${spec.noun} ${n}.`);
            app.go('access', mnt, n);
            if (name) app.flash('ok', `Saved ${spec.noun} ${n}.`);
          } catch (err) { mount(msg, app.failure(err)); }
        },
      },
    }, field('Name', nameInput), controls.map((c) => c.f), msg,
    h('div.actions',
      h('a.button.secondary', { href: app.href('access', mnt) }, 'Back'),
      name ? h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Delete ${spec.noun} ${name}?`, 'Delete'))) return;
            await api.remove(`auth/${mnt}/${spec.list}/${name}`);
            app.after('ok', `Deleted ${spec.noun} ${name}.`);
            app.go('access', mnt);
          },
        },
      }, 'Delete') : null,
      h('button', { type: 'submit' }, 'Save'))));
}
