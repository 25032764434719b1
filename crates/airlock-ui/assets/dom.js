// Builds elements from data. Text goes in as text nodes and attributes through
// setAttribute, never as HTML: whatever a secret, a policy or an audit entry holds is shown
// inert. No other module touches innerHTML.

/** h('tag#id.class', {attr: v, on: {click: f}}, child, ...) → Element. */
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split('.');
  const [tag, id] = head.split('#');
  const el = document.createElement(tag || 'div');
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, f] of Object.entries(v)) el.addEventListener(ev, f);
    } else if (k === 'class') {
      el.className += (el.className ? ' ' : '') + v;
    } else if (k === 'value') {
      el.value = v;
    } else if (k === 'checked') {
      el.checked = !!v;
    } else {
      if (/^on/i.test(k)) throw new Error('inline handlers are not allowed');
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

/** A form field: label, control and an optional hint, wired for screen readers. */
let uid = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const hintEl = hint ? h('small.hint', { id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div.field', h('label', { for: id }, label), control, hintEl);
}

/** A message box: kind is 'error', 'ok' or 'info'. */
export function note(kind, ...text) {
  return h(`div.note.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

/** "3m 20s", "2h 5m", "4d 1h" from seconds. */
export function duration(s) {
  s = Math.max(0, Math.floor(Number(s) || 0));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A local date and time from RFC 3339 (or '' for none). */
export function when(t) {
  if (!t || t.startsWith('0001-')) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

/** A small dialog asking to confirm; resolves true or false. */
export function confirmDialog(message, okLabel = 'Confirm') {
  return new Promise((resolve) => {
    const dlg = h('dialog.confirm', { 'aria-label': 'Confirm' });
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    mount(dlg,
      h('p', message),
      h('div.actions',
        h('button.secondary', { type: 'button', on: { click: () => done(false) } }, 'Cancel'),
        h('button.danger', { type: 'button', on: { click: () => done(true) } }, okLabel)));
    dlg.addEventListener('cancel', () => done(false));
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}
