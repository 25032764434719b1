// Calls to Airlock's API from the page. The session is an HttpOnly cookie the page never
// sees; what the page holds is the session's CSRF token, in memory only (a reload asks the
// server again), sent with every call as X-Airlock-CSRF.

let csrf = '';

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.length ? errors.join('; ') : `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
  }
}

/** Encodes a path for a URL, segment by segment (a '/' separates, nothing else does). */
export function enc(path) {
  return String(path).split('/').map(encodeURIComponent).join('/');
}

async function send(method, url, body, extraHeaders) {
  const headers = { 'X-Airlock-CSRF': csrf, ...extraHeaders };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = headers['Content-Type'] || 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!r.ok) {
    const errors = json && Array.isArray(json.errors) ? json.errors.map(String) : [];
    throw new ApiError(r.status, errors);
  }
  return json;
}

/** `/v1/<path>` with a method; `query` is an object of query parameters. */
export function call(method, path, body, query) {
  const q = query ? '?' + new URLSearchParams(query).toString() : '';
  return send(method, `/v1/${enc(path)}${q}`, body);
}

export const read = (path, query) => call('GET', path, undefined, query);
export const list = (path) => call('GET', path.endsWith('/') ? path : path + '/', undefined, { list: 'true' });
export const write = (path, body) => call('POST', path, body || {});
export const remove = (path, query) => call('DELETE', path, undefined, query);
export const patch = (path, body) =>
  send('PATCH', `/v1/${enc(path)}`, body, { 'Content-Type': 'application/merge-patch+json' });

/** A list, or [] when there is nothing (Vault answers an empty list with 404). */
export async function keys(path) {
  try {
    const r = await list(path);
    return (r && r.data && r.data.keys) || [];
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return [];
    throw e;
  }
}

export async function signIn(body) {
  const r = await send('POST', '/ui/api/session', body);
  csrf = r.csrf;
  return r;
}

export async function whoAmI() {
  const r = await send('GET', '/ui/api/session');
  csrf = r.csrf;
  return r;
}

export async function signOut(revokeToken) {
  try {
    await send('DELETE', '/ui/api/session' + (revokeToken ? '?revoke_token=true' : ''));
  } finally {
    csrf = '';
  }
}
