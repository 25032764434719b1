// The UI's shell: who is signed in, the navigation, and the router. Addresses are
// fragments (#/secrets/kv/...): paths of secrets may appear there, values never do. Each
// page is a module in pages/ exporting `page` ({id, label}) and `render(view, route, app)`;
// adding a page is one module and one line in PAGES.

import { h, mount, note } from './dom.js';
import * as api from './api.js';
import * as signin from './pages/signin.js';
import * as secrets from './pages/secrets.js';
import * as policies from './pages/policies.js';
import * as access from './pages/access.js';
import * as leases from './pages/leases.js';
import * as audit from './pages/audit.js';
import * as broker from './pages/broker.js';
import * as events from './pages/events.js';

const PAGES = [secrets, policies, access, leases, audit, broker, events];
let pending = null;

const app = {
  who: null,
  /** Goes to a route given as parts: app.go('secrets', 'kv', 'show', 'a/b'). */
  go(...parts) {
    location.hash = '#/' + parts.map((p) => encodeURIComponent(p)).join('/');
  },
  href(...parts) {
    return '#/' + parts.map((p) => encodeURIComponent(p)).join('/');
  },
  /** Shows a message above the page now, until the next navigation. */
  flash(kind, text) {
    const f = document.getElementById('flash');
    if (f) mount(f, note(kind, text));
  },
  /** Shows a message on the page the next navigation opens. */
  after(kind, text) {
    pending = { kind, text };
  },
  /** What to show for an API error: a 403 is a page of its own, not a crash. */
  failure(e) {
    if (e instanceof api.ApiError && e.status === 403) {
      return h('div.denied',
        h('h2', 'Permission denied'),
        h('p', 'Your token does not allow this. Ask for a policy that grants it, or sign in with another token.'),
        e.errors.length ? h('p.muted', e.errors.join('; ')) : null);
    }
    return note('error', e && e.message ? e.message : String(e));
  },
};

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const parts = raw ? raw.split('/').map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  }) : [];
  return parts;
}

function layout() {
  const nav = h('nav.main', { 'aria-label': 'Main' },
    PAGES.map((p) => h('a', { href: `#/${p.page.id}`, 'data-page': p.page.id }, p.page.label)));
  const user = h('div.user',
    h('span.who', { title: (app.who.policies || []).join(', ') }, app.who.display_name || 'token'),
    h('button.secondary.small', { type: 'button', on: { click: () => signOutDialog() } }, 'Sign out'));
  return h('div.shell',
    h('header.top',
      h('a.brand', { href: '#/secrets' }, h('img', { src: '/ui/assets/favicon.svg', alt: '', width: 22, height: 22 }), 'Airlock'),
      nav, user),
    h('div#flash', { 'aria-live': 'polite' }),
    h('main#main', { tabindex: '-1' }));
}

async function signOutDialog() {
  const dlg = h('dialog.confirm', { 'aria-label': 'Sign out' });
  const revoke = h('input', { type: 'checkbox', id: 'revoke-token' });
  const close = () => { dlg.close(); dlg.remove(); };
  mount(dlg,
    h('h2', 'Sign out'),
    h('p', 'This ends the browser session. The token itself stays valid unless you revoke it.'),
    h('div.check', revoke, h('label', { for: 'revoke-token' }, 'Also revoke the token')),
    h('div.actions',
      h('button.secondary', { type: 'button', on: { click: close } }, 'Cancel'),
      h('button', {
        type: 'button', on: {
          click: async () => {
            close();
            try { await api.signOut(revoke.checked); } catch { /* the session is gone either way */ }
            app.who = null;
            location.hash = '';
            start();
          },
        },
      }, 'Sign out')));
  document.body.appendChild(dlg);
  dlg.showModal();
}

async function route() {
  const main = document.getElementById('main');
  if (!main) return;
  const parts = parseRoute();
  const id = parts[0] || 'secrets';
  const page = PAGES.find((p) => p.page.id === id) || secrets;
  document.title = `${page.page.label} · Airlock`;
  for (const a of document.querySelectorAll('nav.main a')) {
    if (a.dataset.page === page.page.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const flash = document.getElementById('flash');
  if (flash) mount(flash, pending ? note(pending.kind, pending.text) : null);
  pending = null;
  mount(main, h('p.muted', 'Loading…'));
  try {
    await page.render(main, parts.slice(1), app);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401) return start();
    // A 403 from a token that was revoked or expired meanwhile: back to sign-in.
    if (e instanceof api.ApiError && e.status === 403) {
      try { await api.whoAmI(); } catch { app.who = null; return start(); }
    }
    mount(main, app.failure(e));
  }
}

async function oidcCallback(root) {
  const m = location.pathname.match(/^\/ui\/vault\/auth\/(.+)\/oidc\/callback$/);
  if (!m) return false;
  const q = new URLSearchParams(location.search);
  // The code leaves the address bar (and history) before anything else happens.
  history.replaceState(null, '', '/ui/');
  try {
    await api.signIn({ method: 'oidc', mount: decodeURIComponent(m[1]), state: q.get('state') || '', code: q.get('code') || '' });
  } catch (e) {
    mount(root, h('div.signin', note('error', `OIDC sign-in failed: ${e.message}`), h('p', h('a', { href: '/ui/' }, 'Back to sign-in'))));
    return true;
  }
  return false;
}

async function start() {
  const root = document.getElementById('app');
  if (await oidcCallback(root)) return;
  try {
    app.who = await api.whoAmI();
  } catch {
    app.who = null;
  }
  if (!app.who) {
    document.title = 'Sign in · Airlock';
    signin.render(root, async (who) => {
      app.who = who;
      start();
    });
    return;
  }
  mount(root, layout());
  route();
}

window.addEventListener('hashchange', () => { if (app.who) route(); });
start();
