// Broker: what the credential broker blocked (placeholders sent where their binding does
// not allow), each agent's recent activity, and the bindings and agents stored in Airlock
// (sys/broker/*), edited with the server's own validation (the CLI's).
//   #/broker                    blocked attempts, agents, bindings
//   #/broker/agent/<name>       an agent: its settings and activity ("+new" creates)
//   #/broker/binding/<name>     a binding ("+new" creates)

import { h, mount, field, note, confirmDialog } from '../dom.js';
import * as api from '../api.js';
import { entryRow } from './audit.js';

export const page = { id: 'broker', label: 'Broker' };

async function events(q) {
  try {
    return { entries: (await api.read('sys/airlock/audit/query', { type: 'broker', limit: '50', ...q })).data.entries };
  } catch (e) {
    return { error: e instanceof api.ApiError && e.status === 403 ? 'Broker activity comes from the audit log, which needs sudo on sys/airlock/audit/query.' : e.message };
  }
}

function blockedTable(r) {
  if (r.error) return note('info', r.error);
  if (!r.entries.length) return note('ok', 'Nothing blocked.');
  return h('table.list.blocked', h('thead', h('tr', ['Time', 'Agent', 'Binding', 'Request', 'Reason'].map((t) => h('th', t)))),
    h('tbody', r.entries.map((e) => {
      const b = e.broker || {};
      return h('tr', h('td', new Date(b.time || e.time).toLocaleString()), h('td', b.agent || ''), h('td', b.binding || ''),
        h('td.path', `${b.method || ''} ${b.host || ''}${b.path || ''}`), h('td.reason', b.reason || ''));
    })));
}

function activityTable(r) {
  if (r.error) return note('info', r.error);
  if (!r.entries.length) return note('info', 'No activity recorded.');
  const detail = h('pre.entry-json', { hidden: true });
  return h('div', h('table.list.audit', h('thead', h('tr', ['Time', 'Type', 'Event', 'Request', 'Status', 'Agent', ''].map((t) => h('th', t)))),
    h('tbody', r.entries.map((e) => entryRow(e, () => { detail.hidden = false; detail.textContent = JSON.stringify(e, null, 2); })))), detail);
}

export async function render(view, route, app) {
  const [kind, name] = route;
  if (kind === 'agent') return renderAgent(view, name === '+new' ? '' : name, app);
  if (kind === 'binding') return renderBinding(view, name === '+new' ? '' : name, app);
  const [agents, bindings, blocked] = await Promise.all([
    api.keys('sys/broker/agents'), api.keys('sys/broker/bindings'), events({ kind: 'block' })]);
  mount(view,
    h('h1', 'Credential broker'),
    h('section', h('h2', 'Blocked exfiltration attempts'),
      h('p.muted', 'Requests that carried a placeholder somewhere its binding does not allow: another host, path, header or plain HTTP. The real credential was never sent.'),
      blockedTable(blocked)),
    h('section', h('div.bar', h('h2', 'Agents'), h('a.button.small', { href: app.href('broker', 'agent', '+new') }, 'Create agent')),
      agents.length ? h('ul.tree', agents.map((a) => h('li', h('a', { href: app.href('broker', 'agent', a) }, a)))) : note('info', 'No agents.')),
    h('section', h('div.bar', h('h2', 'Bindings'), h('a.button.small', { href: app.href('broker', 'binding', '+new') }, 'Create binding')),
      bindings.length ? h('ul.tree', bindings.map((b) => h('li', h('a', { href: app.href('broker', 'binding', b) }, b)))) : note('info', 'No bindings.')));
}

async function renderAgent(view, name, app) {
  let cur = { bindings: [], egress: 'tunnel', allow_hosts: [] };
  if (name) cur = (await api.read(`sys/broker/agents/${name}`)).data || cur;
  const n = h('input', { type: 'text', name: 'name', value: name, readonly: !!name, required: true, spellcheck: 'false' });
  const bindings = h('input', { type: 'text', name: 'bindings', value: (cur.bindings || []).join(', '), spellcheck: 'false' });
  const egress = h('select', { name: 'egress' }, ['tunnel', 'inspect', 'allowlist'].map((e) => h('option', { value: e, selected: cur.egress === e ? 'selected' : null }, e)));
  const allow = h('input', { type: 'text', name: 'allow_hosts', value: (cur.allow_hosts || []).join(', '), spellcheck: 'false' });
  const msg = h('div');
  const list = (el) => el.value.split(',').map((s) => s.trim()).filter(Boolean);
  const activity = h('div');
  mount(view,
    h('nav.crumbs', h('a', { href: app.href('broker') }, 'Broker'), ' / agent ', name || 'new'),
    h('h1', name ? `Agent ${name}` : 'Create agent'),
    h('form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          try {
            await api.write(`sys/broker/agents/${n.value.trim()}`, { bindings: list(bindings), egress: egress.value, allow_hosts: list(allow) });
            app.after('ok', `Saved agent ${n.value.trim()}.`);
            app.go('broker', 'agent', n.value.trim());
            if (name) app.flash('ok', `Saved agent ${name}.`);
          } catch (err) { mount(msg, app.failure(err)); }
        },
      },
    }, field('Name', n), field('Bindings', bindings, 'Comma-separated binding names.'), field('Egress', egress, 'tunnel: other hosts pass unseen; inspect: intercepted; allowlist: only allow_hosts.'),
    field('Allowed hosts', allow, 'For allowlist egress.'), msg,
    h('div.actions', h('a.button.secondary', { href: app.href('broker') }, 'Back'),
      name ? h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Delete agent ${name}? Its proxy credentials stop working.`, 'Delete'))) return;
            await api.remove(`sys/broker/agents/${name}`);
            app.after('ok', `Deleted agent ${name}.`);
            app.go('broker');
          },
        },
      }, 'Delete') : null,
      h('button', { type: 'submit' }, 'Save'))),
    name ? h('section', h('h2', 'Recent activity'), activity) : null);
  if (name) mount(activity, activityTable(await events({ agent: name })));
}

const BINDING_TEMPLATE = { provider: 'openai', secret: 'secret/agents/NAME#OPENAI_API_KEY' };

async function renderBinding(view, name, app) {
  let cur = BINDING_TEMPLATE;
  if (name) cur = (await api.read(`sys/broker/bindings/${name}`)).data || {};
  const n = h('input', { type: 'text', name: 'name', value: name, readonly: !!name, required: true, spellcheck: 'false' });
  const text = h('textarea.code', { name: 'binding', rows: 14, spellcheck: 'false', value: JSON.stringify(cur, null, 2) });
  const msg = h('div', { 'aria-live': 'assertive' });
  mount(view,
    h('nav.crumbs', h('a', { href: app.href('broker') }, 'Broker'), ' / binding ', name || 'new'),
    h('h1', name ? `Binding ${name}` : 'Create binding'),
    h('p.muted', 'Fields: provider, secret ("<kv path>#<key>"), env, hosts, port, methods, paths, header, format, query, body, extra_headers. Writing a binding needs read on its secret.'),
    h('form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          let body;
          try { body = JSON.parse(text.value); } catch (err) {
            text.setAttribute('aria-invalid', 'true');
            return mount(msg, note('error', `Not JSON: ${err.message}`));
          }
          try {
            await api.write(`sys/broker/bindings/${n.value.trim()}`, body);
            text.removeAttribute('aria-invalid');
            app.after('ok', `Saved binding ${n.value.trim()}.`);
            app.go('broker', 'binding', n.value.trim());
            if (name) app.flash('ok', `Saved binding ${name}.`);
          } catch (err) {
            text.setAttribute('aria-invalid', 'true');
            mount(msg, app.failure(err));
          }
        },
      },
    }, field('Name', n), h('div.field', h('label', { for: 'binding-json' }, 'Binding (JSON)'), text), msg,
    h('div.actions', h('a.button.secondary', { href: app.href('broker') }, 'Back'),
      name ? h('button.danger', {
        type: 'button', on: {
          click: async () => {
            if (!(await confirmDialog(`Delete binding ${name}?`, 'Delete'))) return;
            await api.remove(`sys/broker/bindings/${name}`);
            app.after('ok', `Deleted binding ${name}.`);
            app.go('broker');
          },
        },
      }, 'Delete') : null,
      h('button', { type: 'submit' }, 'Save'))));
  text.id = 'binding-json';
}
