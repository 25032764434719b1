// The web UI in a real browser: Playwright driving Debian's Chromium (headless). Started by
// the e2e test ui.rs with BASE (the server), TOKEN (a root token) and SUITE ("full": every
// flow, against a TLS server seeded by ui.rs; "dev": sign-in on a plain-HTTP dev server).
// SHOTS, when set, is a folder for screenshots of every page at desktop and phone width.
// Exits non-zero on the first failed step, naming it.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const BASE = process.env.BASE;
const TOKEN = process.env.TOKEN;
const SUITE = process.env.SUITE || 'full';
const SHOTS = process.env.SHOTS || '';
const DEADLINE = Date.now() + 240_000;

let step = '';
function ok(name) { console.log(`ok - ${name}`); }
function check(cond, what) { if (!cond) throw new Error(`check failed: ${what}`); }
async function run(name, f) {
  step = name;
  if (Date.now() > DEADLINE) throw new Error('the suite ran past its deadline');
  await f();
  ok(name);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
ctx.setDefaultTimeout(15_000);
const errors = [];
const cspViolations = [];

async function newPage() {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => console.log(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  await page.exposeFunction('__cspViolation', (v) => cspViolations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return page;
}

async function signInToken(page, token) {
  await page.goto(`${BASE}/ui/`);
  await page.fill('input[name=token]', token);
  await page.click('form button[type=submit]');
  await page.waitForSelector('nav.main');
}

async function signOut(page) {
  await page.click('header .user button');
  await page.click('dialog button:text-is("Sign out")');
  await page.waitForSelector('.signin');
}

try {
  if (SUITE === 'sso') {
    const page = await newPage();
    await run('sign in with a JWT', async () => {
      await page.goto(`${BASE}/ui/`);
      await page.click('role=tab[name=JWT]');
      await page.fill('input[name=role]', 'ui');
      await page.fill('textarea[name=jwt]', process.env.JWT);
      await page.fill('input[name=mount]', 'jwt');
      await page.click('form button[type=submit]');
      await page.waitForSelector('nav.main');
      const who = await page.textContent('header .who');
      check(who.includes('jwt-ci-bot'), `display name: ${who}`);
      await signOut(page);
    });
    await run('sign in with OIDC: to the provider and back; the code leaves the address bar', async () => {
      await page.click('role=tab[name=OIDC]');
      await page.fill('input[name=role]', 'web');
      await page.fill('input[name=mount]', 'oidc');
      await page.click('form button[type=submit]');
      await page.waitForSelector('nav.main', { timeout: 20_000 });
      const who = await page.textContent('header .who');
      check(who.includes('ada@example.com'), `display name: ${who}`);
      check(!page.url().includes('code=') && !page.url().includes('state='), `address: ${page.url()}`);
      await signOut(page);
    });
  } else if (SUITE === 'dev') {
    const page = await newPage();
    await run('dev server: sign in with a token over plain HTTP', async () => {
      await signInToken(page, TOKEN);
      const cookies = await ctx.cookies(BASE);
      const c = cookies.find((x) => x.name === 'airlock_session');
      check(c && c.httpOnly && c.sameSite === 'Strict' && !c.secure, `plain-HTTP cookie flags: ${JSON.stringify(cookies)}`);
      await page.waitForSelector('h1:text("Secrets engines")');
    });
    await run('dev server: sign out', async () => { await signOut(page); });
  } else {
    // Undici (Node's fetch) does not take ignoreHTTPSErrors: API calls from this script
    // go through the browser context's request API instead.
    const req = ctx.request;
    const apiCall = async (method, path, data) => {
      const r = await req.fetch(`${BASE}/v1/${path}`, { method, headers: { 'X-Vault-Token': TOKEN }, data });
      return { status: r.status(), body: r.status() === 204 ? null : await r.json().catch(() => null) };
    };

    const page = await newPage();
    await run('sign in with a token; the session is an HttpOnly Secure SameSite=Strict cookie', async () => {
      await signInToken(page, TOKEN);
      const c = (await ctx.cookies(BASE)).find((x) => x.name === '__Host-airlock_session');
      check(c && c.httpOnly && c.secure && c.sameSite === 'Strict', 'cookie flags');
      const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie);
      check(!stored.includes(TOKEN) && !stored.includes(c.value), 'nothing of the session is readable by scripts');
    });

    await run('create a secret, edit it twice', async () => {
      await page.goto(`${BASE}/ui/#/secrets/secret`);
      await page.click('a:text("Create secret")');
      await page.fill('input[name=path]', 'app/db');
      await page.fill('table.edit tbody tr:nth-child(1) input', 'password');
      await page.fill('table.edit tbody tr:nth-child(1) textarea', 'first-Password-1');
      await page.click('button:text("Add key")');
      await page.fill('table.edit tbody tr:nth-child(2) input', 'user');
      await page.fill('table.edit tbody tr:nth-child(2) textarea', 'app');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Created app/db.');
      check(!(await page.content()).includes('first-Password-1'), 'values are masked until revealed');
      await page.click('button:text-is("Edit")');
      await page.fill('table.edit tbody tr:nth-child(1) textarea', 'second-Password-2');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved version 2.');
      await page.click('button:text-is("Edit")');
      await page.fill('table.edit tbody tr:nth-child(2) textarea', 'app-admin');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved version 3.');
      const v = await apiCall('GET', 'secret/data/app/db');
      check(v.body.data.data.password === 'second-Password-2' && v.body.data.data.user === 'app-admin', 'the edits reached the server');
    });

    await run('see the diff of versions 1 and 3', async () => {
      await page.click('role=tab[name=/Versions/]');
      await page.selectOption('#diff-a', '1');
      await page.selectOption('#diff-b', '3');
      await page.click('button:text-is("Compare")');
      await page.waitForSelector('table.diff');
      const rows = await page.$$eval('table.diff tbody tr', (trs) => trs.map((t) => t.textContent));
      check(rows.some((r) => r.includes('password') && r.includes('changed')), `password changed: ${rows}`);
      check(rows.some((r) => r.includes('user') && r.includes('changed')), 'user changed');
      check(!(await page.content()).includes('first-Password-1'), 'the diff masks values');
      // Reveal one cell of the diff: version 1's password.
      await page.click('table.diff [aria-label="Reveal password in v1"]');
      await page.waitForSelector('table.diff code.value.shown');
      check((await page.textContent('table.diff code.value.shown')).includes('first-Password-1'), 'revealed v1');
    });

    await run('roll back to version 1', async () => {
      await page.click('role=tab[name=/Secret/]');
      await page.selectOption('select[aria-label=Version]', '1');
      await page.click('button:text("Roll back to version 1")');
      await page.click('dialog button:text-is("Roll back")');
      await page.waitForSelector('text=version 4 has version 1');
      const v = await apiCall('GET', 'secret/data/app/db');
      check(v.body.data.data.password === 'first-Password-1' && v.body.data.metadata.version === 4, 'rollback wrote v4 = v1');
    });

    await run('reveal one value and copy another; no value in the URL, title or history', async () => {
      await page.click('[aria-label="Reveal password"]');
      await page.waitForSelector('code.value.shown');
      check((await page.textContent('code.value.shown')) === 'first-Password-1', 'revealed value');
      // The page may write the clipboard but never read it (Permissions-Policy), so the
      // write is observed where it happens.
      await page.evaluate(() => { navigator.clipboard.writeText = async (t) => { window.__copied = t; }; });
      await page.click('[aria-label="Copy user"]');
      await page.waitForSelector('button:text-is("Copied")');
      const clip = await page.evaluate(() => window.__copied);
      check(clip === 'app', `copied: ${clip}`);
      const where = page.url() + (await page.title()) + (await page.evaluate(() => history.length + JSON.stringify(history.state)));
      check(!where.includes('first-Password-1') && !where.includes('app-admin'), 'no value in URL, title or history');
    });

    await run('a concurrent edit from a second tab is a conflict, not an overwrite', async () => {
      const tab2 = await newPage();
      await tab2.goto(`${BASE}/ui/#/secrets/secret/show/app%2Fdb`);
      await tab2.waitForSelector('button:text-is("Edit")');
      await page.click('button:text-is("Edit")');
      await tab2.click('button:text-is("Edit")');
      await page.fill('table.edit tbody tr:nth-child(1) textarea', 'from-tab-one');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved version 5.');
      await tab2.fill('table.edit tbody tr:nth-child(1) textarea', 'from-tab-two');
      await tab2.click('form button[type=submit]');
      await tab2.waitForSelector('text=/Conflict/');
      const v = await apiCall('GET', 'secret/data/app/db');
      check(v.body.data.data.password === 'from-tab-one' && v.body.data.metadata.version === 5, 'tab two did not overwrite');
      await tab2.close();
    });

    await run('metadata: max_versions, cas_required, custom metadata', async () => {
      await page.click('role=tab[name=/Metadata/]');
      await page.fill('input[type=number]', '7');
      await page.click('button:text("Add metadata")');
      const rows = await page.$$('table.edit tbody tr');
      const last = rows[rows.length - 1];
      const ins = await last.$$('input');
      await ins[0].fill('owner');
      await ins[1].fill('team-data');
      await page.click('button:text("Save metadata")');
      await page.waitForSelector('text=Metadata saved.');
      const m = await apiCall('GET', 'secret/metadata/app/db');
      check(m.body.data.max_versions === 7 && m.body.data.custom_metadata.owner === 'team-data', JSON.stringify(m.body.data));
    });

    await run('delete, undelete and destroy versions', async () => {
      await page.click('role=tab[name=/Versions/]');
      await page.click('table.list tbody tr:has-text("v2") button:text-is("Delete")');
      await page.click('dialog button:text-is("Delete")');
      await page.waitForSelector('table.list tbody tr:has-text("v2") .status.deleted');
      await page.click('table.list tbody tr:has-text("v2") button:text-is("Undelete")');
      await page.waitForSelector('table.list tbody tr:has-text("v2") .status.live');
      await page.click('table.list tbody tr:has-text("v3") button:text-is("Destroy")');
      await page.click('dialog button:text-is("Destroy")');
      await page.waitForSelector('table.list tbody tr:has-text("v3") .status.destroyed');
      const m = await apiCall('GET', 'secret/metadata/app/db');
      check(m.body.data.versions['3'].destroyed === true && m.body.data.versions['2'].deletion_time === '', 'server agrees');
    });

    await run('search the folder tree', async () => {
      await page.goto(`${BASE}/ui/#/secrets/secret`);
      await page.waitForSelector('ul.tree');
      await page.fill('input[type=search]', 'db');
      await page.press('input[type=search]', 'Enter');
      await page.waitForSelector('text=/1 secret below/');
      check(await page.isVisible('ul.tree a:text("app/db")'), 'found app/db');
    });

    await run('a policy with a syntax error shows it inline, then a valid one saves', async () => {
      await page.goto(`${BASE}/ui/#/policies`);
      await page.click('a:text("Create policy")');
      await page.waitForSelector('h1:text("Create policy")');
      await page.fill('input[name=name]', 'app-reader');
      await page.fill('textarea[name=policy]', 'path "secret/data/app/*" {\n  capabilities = ["read"\n}\n');
      await page.click('form button[type=submit]');
      await page.waitForSelector('.note.error');
      const msg = await page.textContent('.note.error');
      check(/Line 3, column 1/.test(msg), `inline position: ${msg}`);
      check((await page.getAttribute('textarea[name=policy]', 'aria-invalid')) === 'true', 'editor marked invalid');
      await page.fill('textarea[name=policy]', 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Policy app-reader created.');
      const p = await apiCall('GET', 'sys/policies/acl/app-reader');
      check(p.status === 200, 'saved on the server');
    });

    await run('capabilities of this token on a path', async () => {
      await page.goto(`${BASE}/ui/#/policies`);
      await page.fill('section input >> nth=0', 'secret/data/app/db');
      await page.click('section button:text("Check")');
      await page.waitForSelector('.cap-root');
    });

    await run('auth methods: a role created with the form', async () => {
      await page.goto(`${BASE}/ui/#/access`);
      await page.selectOption('select[aria-label="Method type"]', 'approle');
      await page.click('form.inline-form button:text("Enable")');
      await page.waitForSelector('text=Enabled approle at auth/approle/.');
      await page.click('a:text("Create role")');
      await page.fill('input[name=name]', 'ci');
      await page.fill('input[name=token_policies]', 'app-reader, default');
      await page.fill('input[name=token_ttl]', '20m');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved role ci.');
      const r = await apiCall('GET', 'auth/approle/role/ci');
      check(r.body.data.token_ttl === 1200 && r.body.data.token_policies.includes('app-reader'), JSON.stringify(r.body.data));
    });

    await run('auth methods: Kubernetes and JWT roles and a userpass user with their forms', async () => {
      const enable = async (type) => {
        await page.goto(`${BASE}/ui/#/access`);
        await page.selectOption('select[aria-label="Method type"]', type);
        await page.click('form.inline-form button:text("Enable")');
        await page.waitForSelector(`text=Enabled ${type} at auth/${type}/.`);
      };
      await enable('kubernetes');
      await page.click('a:text("Create role")');
      await page.fill('input[name=name]', 'web');
      await page.fill('input[name=bound_service_account_names]', 'web, worker');
      await page.fill('input[name=bound_service_account_namespaces]', 'prod');
      await page.fill('input[name=token_policies]', 'app-reader');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved role web.');
      const k = await apiCall('GET', 'auth/kubernetes/role/web');
      check(k.body.data.bound_service_account_names.includes('worker') && k.body.data.bound_service_account_namespaces[0] === 'prod', JSON.stringify(k.body.data));
      await enable('jwt');
      await page.click('a:text("Create role")');
      await page.fill('input[name=name]', 'ci');
      await page.fill('input[name=role_type]', 'jwt');
      await page.fill('input[name=user_claim]', 'repository');
      await page.fill('input[name=bound_audiences]', 'https://github.com/my-org');
      await page.fill('textarea[name=bound_claims]', '{"repository": "my-org/app"}');
      await page.fill('input[name=token_policies]', 'app-reader');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved role ci.');
      const j = await apiCall('GET', 'auth/jwt/role/ci');
      check(j.body.data.bound_claims.repository === 'my-org/app' && j.body.data.user_claim === 'repository', JSON.stringify(j.body.data));
      await page.goto(`${BASE}/ui/#/access/userpass/+new`);
      await page.fill('input[name=name]', 'carol');
      await page.fill('input[name=password]', 'carol-pass-1');
      await page.fill('input[name=token_policies]', 'app-reader');
      await page.click('form button[type=submit]');
      await page.waitForSelector('text=Saved user carol.');
      const login = await apiCall('POST', 'auth/userpass/login/carol', { password: 'carol-pass-1' });
      check(login.status === 200 && login.body.auth.policies.includes('app-reader'), 'carol signs in with the password set in the form');
    });

    await run('tokens: look up by accessor and revoke', async () => {
      const t = await apiCall('POST', 'auth/token/create', { policies: ['default'], display_name: 'to-revoke' });
      const accessor = t.body.auth.accessor;
      await page.goto(`${BASE}/ui/#/access`);
      await page.fill('form.inline-form:has(button:text("Look up")) input', accessor);
      await page.click('button:text("Look up")');
      await page.waitForSelector('text=token-to-revoke');
      await page.click('button:text("Revoke token")');
      await page.click('dialog button:text-is("Revoke")');
      await page.waitForSelector('text=Token revoked.');
      const l = await apiCall('POST', 'auth/token/lookup-accessor', { accessor });
      check(l.status >= 400, 'the token is gone');
    });

    await run('leases: by prefix, time left, renew, revoke, revoke-prefix', async () => {
      await page.goto(`${BASE}/ui/#/leases`);
      await page.waitForSelector('h1:text("Leases")');
      if (!process.env.LEASES) return;
      await page.click('ul.tree a:text("database/")');
      await page.click('ul.tree a:text("creds/")');
      await page.click('ul.tree a:text("ui/")');
      await page.waitForSelector('table.list tbody tr');
      check((await page.$$('table.list tbody tr')).length === 2, 'two leases');
      const left = await page.textContent('table.list tbody tr:nth-child(1) td:nth-child(2)');
      check(/^(59m|1h)/.test(left), `time left: ${left}`);
      await page.click('table.list tbody tr:nth-child(1) button:text-is("Renew")');
      await page.waitForSelector('text=/Renewed for/');
      await page.click('table.list tbody tr:nth-child(2) button:text-is("Revoke")');
      await page.click('dialog button:text-is("Revoke")');
      await page.waitForSelector('text=Lease revoked.');
      check((await page.$$('table.list tbody tr')).length === 1, 'one lease left');
      await page.click('button:text-is("Revoke prefix")');
      await page.click('dialog button:text-is("Revoke all")');
      await page.waitForSelector('text=/Revoked every lease under/');
      const l = await apiCall('LIST', 'sys/leases/lookup/database/creds/ui/');
      check(l.status === 404 || !(l.body && l.body.data && l.body.data.keys.length), `no leases left: ${JSON.stringify(l.body)}`);
    });

    await run('XSS attempts in keys, values, metadata, policies and audit fields render inert', async () => {
      const evil = '<img src=x onerror=window.__xss=1>';
      const evilScript = '<script>window.__xss=2</script>';
      await apiCall('POST', `secret/data/${encodeURI('xss/<img src=x onerror=window.__xss=3>')}`, { data: { [evil]: evilScript, plain: evil } });
      await apiCall('POST', `secret/metadata/${encodeURI('xss/<img src=x onerror=window.__xss=3>')}`, { custom_metadata: { [evilScript]: evil } });
      await apiCall('PUT', 'sys/policies/acl/xss-policy', { policy: `# ${evilScript}\npath "secret/data/x" { capabilities = ["read"] }\n` });
      await page.goto(`${BASE}/ui/#/secrets/secret/list/xss%2F`);
      await page.click('ul.tree a');
      await page.waitForSelector('table.kv');
      await page.click(`[aria-label="Reveal ${evil}"]`);
      await page.waitForSelector('code.value.shown');
      check((await page.textContent('code.value.shown')) === evilScript, 'the script is shown as text');
      await page.click('role=tab[name=/Metadata/]');
      await page.waitForSelector('button:text("Save metadata")');
      await page.goto(`${BASE}/ui/#/policies/xss-policy`);
      await page.waitForSelector('textarea[name=policy]');
      check((await page.inputValue('textarea[name=policy]')).includes(evilScript), 'policy text shown as text');
      await page.goto(`${BASE}/ui/#/audit`);
      await page.waitForSelector('table.audit');
      await page.waitForTimeout(300);
      check(await page.evaluate(() => window.__xss === undefined), 'no injected code ran');
      check(!(await page.$('img[src=x]')), 'no injected element exists');
    });

    await run('the CSP is enforced: an injected inline script does not run', async () => {
      await page.evaluate(() => {
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.body.appendChild(s);
      });
      await page.waitForTimeout(200);
      check(await page.evaluate(() => window.__inline === undefined), 'inline script blocked');
      check(cspViolations.some((v) => v.startsWith('script-src')), `a violation was reported: ${cspViolations}`);
    });

    await run('the audit page finds the reads just made', async () => {
      await page.goto(`${BASE}/ui/#/audit`);
      await page.fill('input[name=path_prefix]', 'secret/data/app/db');
      await page.fill('input[name=operation]', 'read');
      await page.selectOption('select[aria-label="Entry type"]', 'response');
      await page.click('form.filters button[type=submit]');
      await page.waitForSelector('table.audit tbody tr');
      const n = (await page.$$('table.audit tbody tr')).length;
      check(n >= 2, `reads found: ${n}`);
      check(await page.isVisible('text=/hash chain intact/'), 'chain state shown');
      // By a value: the HMAC of the password the reveal returned.
      await page.click('form.filters button[type=reset]');
      await page.fill('form.filters input[type=password]', 'first-Password-1');
      await page.click('form.filters button[type=submit]');
      await page.waitForSelector('table.audit tbody tr');
      await page.click('button:text("Verify file now")');
      await page.waitForSelector('text=/file verified/');
    });

    await run('the broker page shows the blocked attempt and an agent', async () => {
      await page.goto(`${BASE}/ui/#/broker`);
      await page.waitForSelector('table.blocked');
      const t = await page.textContent('table.blocked');
      check(t.includes('exfil.example.net') && t.includes('placeholder sent to a host'), t);
      await page.click('a:text("voice")');
      await page.waitForSelector('h1:text("Agent voice")');
      await page.waitForSelector('text=Recent activity');
    });

    await run('broker bindings are validated by the server', async () => {
      await page.goto(`${BASE}/ui/#/broker/binding/+new`);
      await page.fill('input[name=name]', 'bad');
      await page.fill('textarea[name=binding]', '{"secret": "secret/agents/voice#OPENAI_API_KEY", "hosts": ["a/b"]}');
      await page.click('form button[type=submit]');
      await page.waitForSelector('.note.error');
    });

    await run('the events page shows a change as it happens, without its value', async () => {
      await page.goto(`${BASE}/ui/#/events`);
      await page.waitForSelector('text=/no events since this page opened/');
      await apiCall('POST', 'secret/data/app/live', { data: { token: 'live-value-9' } });
      await page.waitForSelector('table.events td:text("secret/data/app/live")', { timeout: 10_000 });
      check(!(await page.content()).includes('live-value-9'), 'no value in events');
    });

    if (SHOTS) {
      await run('screenshots of every page at desktop and phone width', async () => {
        mkdirSync(SHOTS, { recursive: true });
        const routes = ['secrets', 'secrets/secret', 'secrets/secret/show/app%2Fdb', 'policies', 'policies/app-reader', 'access', 'access/approle/ci', 'leases', 'audit', 'broker', 'broker/agent/voice', 'events'];
        for (const [w, h, tag] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
          await page.setViewportSize({ width: w, height: h });
          for (const r of routes) {
            await page.goto(`${BASE}/ui/#/${r}`);
            await page.waitForTimeout(400);
            await page.screenshot({ path: `${SHOTS}/${tag}-${r.replace(/[/%]/g, '_')}.png`, fullPage: true });
          }
        }
        await page.setViewportSize({ width: 1280, height: 800 });
      });
    }

    await run('keyboard: the skip link and the navigation are reachable with Tab', async () => {
      await page.goto(`${BASE}/ui/#/secrets`);
      await page.reload();
      await page.waitForSelector('h1:text("Secrets engines")');
      await page.keyboard.press('Tab');
      check(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'skip link first');
      for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
      check(await page.evaluate(() => document.activeElement.closest('nav.main') !== null), 'navigation reachable');
    });

    await run('sign out; the token still works', async () => {
      await signOut(page);
      const r = await apiCall('GET', 'auth/token/lookup-self');
      check(r.status === 200, 'token alive');
    });

    await run('sign in with userpass; a restricted token sees 403 pages, not data', async () => {
      await page.click('role=tab[name=Userpass]');
      await page.fill('input[name=username]', 'bob');
      await page.fill('input[name=password]', 'bob-pass-1');
      await page.click('form button[type=submit]');
      await page.waitForSelector('nav.main');
      await page.goto(`${BASE}/ui/#/secrets/secret/show/app%2Fdb`);
      await page.waitForSelector('.denied');
      const html = await page.content();
      check(!html.includes('from-tab-one') && !html.includes('password'), 'no data shown');
      await page.goto(`${BASE}/ui/#/audit`);
      await page.waitForSelector('.denied');
      await page.goto(`${BASE}/ui/#/policies`);
      await page.waitForSelector('.denied');
      await signOut(page);
    });

    await run('a session whose token is revoked goes back to sign-in', async () => {
      const t = await apiCall('POST', 'auth/token/create', { policies: ['app-reader'], ttl: '1h' });
      await page.click('role=tab[name=Token]');
      await page.fill('input[name=token]', t.body.auth.client_token);
      await page.click('form button[type=submit]');
      await page.waitForSelector('nav.main');
      await apiCall('POST', 'auth/token/revoke-accessor', { accessor: t.body.auth.accessor });
      await page.goto(`${BASE}/ui/#/policies`);
      await page.waitForSelector('.signin');
    });

    await run('wrong password: a clear message, no session', async () => {
      await page.click('role=tab[name=Userpass]');
      await page.fill('input[name=username]', 'bob');
      await page.fill('input[name=password]', 'nope');
      await page.click('form button[type=submit]');
      await page.waitForSelector('.note.error');
      check(!(await ctx.cookies(BASE)).some((c) => c.name.includes('airlock_session') && c.value), 'no session cookie');
    });
  }
  check(errors.length === 0, `no script errors: ${errors.join(' | ')}`);
  await browser.close();
  console.log('all browser checks passed');
} catch (e) {
  console.log(`not ok - ${step}: ${e.message}`);
  console.log(`script errors: ${errors.join(' | ')}`);
  for (const [i, p] of ctx.pages().entries()) {
    console.log(`page ${i} at ${p.url()}: ${(await p.content().catch(() => '')).slice(0, 3000)}`);
  }
  await browser.close();
  process.exit(1);
}
