// Access: ACL policies (list, read, write with the server's own parser reporting line and
// column inline, delete) and "what can a token do on a path" (capabilities).
//   #/policies            list and the capabilities check
//   #/policies/<name>     one policy (edit)
//   #/policies/+new       a new policy

import { h, mount, field, note, confirmDialog } from '../dom.js';
import * as api from '../api.js';

export const page = { id: 'policies', label: 'Policies' };

export async function render(view, route, app) {
  const [name] = route;
  if (name) return renderOne(view, name === '+new' ? '' : name, app);
  const names = await api.keys('sys/policies/acl');
  const filter = h('input', { type: 'search', placeholder: 'Filter policies', 'aria-label': 'Filter policies' });
  const list = h('ul.tree');
  const draw = () => mount(list, names.filter((n) => n.includes(filter.value.trim()))
    .map((n) => h('li.policy', h('a', { href: app.href('policies', n) }, n))));
  filter.addEventListener('input', draw);
  draw();
  mount(view,
    h('div.bar', h('h1', 'ACL policies'), h('a.button', { href: app.href('policies', '+new') }, 'Create policy')),
    filter, list, capabilitiesForm());
}

function capabilitiesForm() {
  const path = h('input', { type: 'text', placeholder: 'secret/data/app/db', spellcheck: 'false', required: true });
  const accessor = h('input', { type: 'text', placeholder: 'empty: your own token', spellcheck: 'false' });
  const out = h('div', { 'aria-live': 'polite' });
  return h('section',
    h('h2', 'What can a token do on a path?'),
    h('form.inline-form', {
      on: {
        submit: async (e) => {
          e.preventDefault();
          const p = path.value.trim();
          try {
            const r = accessor.value.trim()
              ? await api.write('sys/capabilities-accessor', { accessor: accessor.value.trim(), paths: [p] })
              : await api.write('sys/capabilities-self', { paths: [p] });
            const caps = (r.data && r.data[p]) || r.capabilities || [];
            mount(out, h('p', h('code', p), ': ', caps.map((c) => h('span', { class: `cap cap-${c}` }, c))));
          } catch (err) {
            mount(out, note('error', err.message));
          }
        },
      },
    }, field('Path', path), field('Token accessor', accessor), h('button', { type: 'submit' }, 'Check')),
    out);
}

/** "At 3:7: ..." in a parse error → {line, column}. */
function position(msg) {
  const m = /At (\d+):(\d+):/.exec(msg);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}

async function renderOne(view, name, app) {
  let text = '';
  if (name) {
    const r = await api.read(`sys/policies/acl/${name}`);
    text = (r.data && r.data.policy) || '';
  }
  const nameInput = h('input', { type: 'text', name: 'name', value: name, required: true, readonly: !!name, spellcheck: 'false', autocomplete: 'off' });
  const editor = h('textarea.code', { name: 'policy', rows: 18, spellcheck: 'false', 'aria-label': 'Policy (HCL)', value: text });
  const gutter = h('pre.gutter', { 'aria-hidden': 'true' });
  const msg = h('div', { 'aria-live': 'assertive' });
  const lines = () => {
    const n = editor.value.split('\n').length;
    mount(gutter, Array.from({ length: n }, (_, i) => `${i + 1}\n`).join(''));
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener('input', () => { lines(); editor.removeAttribute('aria-invalid'); });
  editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && editor.dataset.tabs === 'on') {
      e.preventDefault();
      editor.setRangeText('  ', editor.selectionStart, editor.selectionEnd, 'end');
    }
  });

  function showError(err) {
    const pos = position(err.message);
    editor.setAttribute('aria-invalid', 'true');
    if (pos) {
      const before = editor.value.split('\n').slice(0, pos.line - 1).join('\n').length + (pos.line > 1 ? 1 : 0);
      editor.focus();
      editor.setSelectionRange(before + pos.column - 1, before + pos.column);
      mount(msg, note('error', h('strong', `Line ${pos.line}, column ${pos.column}: `), err.message.replace(/^.*At \d+:\d+: /, '')));
      const marks = editor.value.split('\n').map((_, i) => (i + 1 === pos.line ? `▶${i + 1}\n` : `${i + 1}\n`)).join('');
      mount(gutter, marks);
    } else {
      mount(msg, app.failure(err));
    }
  }

  const form = h('form', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        const n = nameInput.value.trim();
        if (!n) return mount(msg, note('error', 'Give the policy a name.'));
        try {
          await api.write(`sys/policies/acl/${n}`, { policy: editor.value });
          mount(msg);
          if (!name) {
            app.after('ok', `Policy ${n} created.`);
            app.go('policies', n);
          } else {
            app.flash('ok', `Policy ${n} saved.`);
          }
        } catch (err) {
          showError(err);
        }
      },
    },
  },
  field('Name', nameInput),
  h('div.field', h('label', { for: 'policy-text' }, 'Policy'), h('div.code-editor', gutter, editor)),
  msg,
  h('div.actions',
    h('a.button.secondary', { href: app.href('policies') }, 'Back'),
    name && name !== 'root' && name !== 'default' ? h('button.danger', {
      type: 'button', on: {
        click: async () => {
          if (!(await confirmDialog(`Delete the policy ${name}? Tokens holding it lose what it granted.`, 'Delete'))) return;
          try {
            await api.remove(`sys/policies/acl/${name}`);
            app.after('ok', `Policy ${name} deleted.`);
            app.go('policies');
          } catch (err) { mount(msg, app.failure(err)); }
        },
      },
    }, 'Delete') : null,
    name === 'root' ? null : h('button', { type: 'submit' }, 'Save')));
  editor.id = 'policy-text';
  mount(view, h('h1', name ? `Policy ${name}` : 'Create policy'), form);
  lines();
}
