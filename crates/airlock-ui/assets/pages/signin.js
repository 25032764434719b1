// Sign-in: a token, userpass (or LDAP), a JWT, or the OIDC browser flow. Whatever is typed
// goes to /ui/api/session in a POST body, never in the address; the answer sets the
// session cookie.

import { h, mount, field, note } from '../dom.js';
import * as api from '../api.js';

const METHODS = [
  { id: 'token', label: 'Token' },
  { id: 'userpass', label: 'Userpass' },
  { id: 'jwt', label: 'JWT' },
  { id: 'oidc', label: 'OIDC' },
];

export function render(root, done) {
  let method = 'token';
  const msg = h('div.msg', { 'aria-live': 'assertive' });
  const body = h('div');
  const tabs = h('div.tabs', { role: 'tablist', 'aria-label': 'Sign-in method' });

  function input(name, type = 'text', extra = {}) {
    return h('input', { name, type, autocomplete: 'off', spellcheck: 'false', ...extra });
  }

  function show() {
    mount(tabs, METHODS.map((m) => h('button', {
      type: 'button', role: 'tab', id: `tab-${m.id}`,
      'aria-selected': String(m.id === method), tabindex: m.id === method ? '0' : '-1',
      on: {
        click: () => { method = m.id; show(); },
        keydown: (e) => {
          const i = METHODS.findIndex((x) => x.id === method);
          const next = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
          if (!next) return;
          method = METHODS[(i + next + METHODS.length) % METHODS.length].id;
          show();
          document.getElementById(`tab-${method}`)?.focus();
        },
      },
    }, m.label)));
    const fields = {
      token: [field('Token', input('token', 'password', { autocomplete: 'current-password', required: true }))],
      userpass: [
        field('Username', input('username', 'text', { autocomplete: 'username', required: true })),
        field('Password', input('password', 'password', { autocomplete: 'current-password', required: true })),
        field('Mount path', input('mount', 'text', { placeholder: 'userpass' })),
      ],
      jwt: [
        field('Role', input('role', 'text', { placeholder: 'the mount\'s default role' })),
        field('JWT', h('textarea', { name: 'jwt', rows: 4, spellcheck: 'false', required: true })),
        field('Mount path', input('mount', 'text', { placeholder: 'jwt' })),
      ],
      oidc: [
        field('Role', input('role', 'text', { placeholder: 'the mount\'s default role' })),
        field('Mount path', input('mount', 'text', { placeholder: 'oidc' })),
      ],
    }[method];
    mount(body, h('form', { role: 'tabpanel', 'aria-labelledby': `tab-${method}`, on: { submit } },
      fields, h('button', { type: 'submit' }, method === 'oidc' ? 'Continue with OIDC' : 'Sign in')));
    body.querySelector('input, textarea')?.focus();
  }

  async function submit(e) {
    e.preventDefault();
    const form = e.target;
    const data = Object.fromEntries(new FormData(form).entries());
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    mount(msg);
    try {
      if (method === 'oidc') {
        const mnt = (data.mount || 'oidc').replace(/^\/+|\/+$/g, '');
        const redirect = `${location.origin}/ui/vault/auth/${mnt}/oidc/callback`;
        const r = await api.write(`auth/${mnt}/oidc/auth_url`, { role: data.role || '', redirect_uri: redirect });
        const url = r && r.data && r.data.auth_url;
        if (!url) throw new Error('the OIDC provider gave no address (is the redirect URI allowed by the role?)');
        location.assign(url);
        return;
      }
      const who = await api.signIn({ method, ...data });
      form.reset();
      done(who);
    } catch (err) {
      const text = err instanceof api.ApiError && err.status === 403
        ? 'Sign-in refused: check what you typed, or ask whether this method is enabled.'
        : err.message;
      mount(msg, note('error', text));
      button.disabled = false;
    }
  }

  mount(root, h('div.signin',
    h('h1', h('img', { src: '/ui/assets/favicon.svg', alt: '', width: 32, height: 32 }), 'Airlock'),
    h('p.muted', 'Sign in to manage secrets, policies and access.'),
    tabs, msg, body));
  show();
}
