// docsearch's page: a live document list, an editor and a live search, built
// on the Derive browser client. No framework, no build step.
//
// - The document list is a subscription to the whole `documents` view.
// - The search re-runs GET /v1/query/search/search?q=…&after=<offset> each
//   time the documents view changes, so results follow every change made in
//   any window (after= makes the query wait until `search`, derived from
//   `documents`, has caught up with that change).
// - The totals come from a subscription to the `stats` view's "totals" key;
//   the status bar polls /v1/views for each view's offset and lag, every
//   second and shortly after each change.
import { connect, newIdempotencyKey } from '/client/derive.js';

const $ = (id) => document.getElementById(id);
const el = {
  search: $('search'),
  connection: $('connection'),
  connectionText: $('connection-text'),
  resultsPanel: $('results-panel'),
  results: $('results'),
  resultsMeta: $('results-meta'),
  resultsEmpty: $('results-empty'),
  documents: $('documents'),
  documentsEmpty: $('documents-empty'),
  docCount: $('doc-count'),
  newDoc: $('new-doc'),
  editor: $('editor'),
  editorHeading: $('editor-heading'),
  editorNotice: $('editor-notice'),
  id: $('doc-id'),
  title: $('doc-title'),
  text: $('doc-text'),
  author: $('doc-author'),
  save: $('save'),
  del: $('delete'),
  clear: $('clear'),
  formMessage: $('form-message'),
  totals: $('totals'),
  viewStatus: $('view-status'),
};

const MAX_LISTED = 500;
const FLASH_MS = 1600;
const WORD = /[\p{L}\p{Nd}]+/gu;

// Auth mode (README.md, "Auth mode"): open the page as /#token=<jwt>; the token
// is kept for the tab (sessionStorage). The page then shows the user's own
// documents (users/<sub>/) and the public area, saves new documents in the
// user's area and searches both. Without a token the page is unchanged.
const token = readToken();
const area = token ? `users/${tokenSubject(token)}/` : null;
let publicOnly = false;  // a server in auth mode, no token: the public area only
const client = connect(undefined, { onStatus: showConnection, ...(token ? { token } : {}) });

function readToken() {
  const m = location.hash.match(/token=([A-Za-z0-9_.-]+)/);
  if (m) {
    sessionStorage.setItem('docsearch-token', m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem('docsearch-token');
}

function tokenSubject(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))).sub || 'unknown';
  } catch (e) {
    return 'unknown';
  }
}

let documents = new Map();   // id -> {title, text, updated}, kept live
let documentsOffset = 0;     // the documents view offset the list shows
const changedAt = new Map(); // id -> time of its last change (for a flash)
const editor = { id: null, updated: 0, saving: false };

// --- live data ---

// In auth mode two subscriptions (own area, public area) make one list.
const parts = new Map();  // prefix -> {state, offset}
function subscribeDocuments(prefix) {
  client.subscribe('documents', { prefix }, (state, info) => {
    parts.set(prefix, { state, offset: info.offset });
    onDocuments(info);
  }, {
    onError: (e) => {
      if (prefix === '' && e.code === 'unauthorized') {
        publicOnly = true;  // the server wants a token for all but public/
        subscribeDocuments('public/');
      } else {
        message(`The document list failed: ${e.message}`, 'error');
      }
    },
  });
}
for (const prefix of area ? [area, 'public/'] : ['']) subscribeDocuments(prefix);

function onDocuments(info) {
  if (parts.size === 1) {
    documents = [...parts.values()][0].state;
  } else {
    documents = new Map();
    for (const p of parts.values()) for (const [k, v] of p.state) documents.set(k, v);
  }
  documentsOffset = Math.max(...[...parts.values()].map((p) => p.offset));
  if (info.type === 'changes') {
    const now = performance.now();
    for (const c of info.changes) changedAt.set(c.key, now);
  } else {
    // A new snapshot (a reset: the view was rebuilt, e.g. after its author
    // was forgotten) replaces everything: the page keeps nothing of a
    // document it no longer holds, not even in the editor.
    for (const id of changedAt.keys()) if (!documents.has(id)) changedAt.delete(id);
    if (editor.id !== null && !documents.has(editor.id)) {
      newDocument();
      message('The document you were editing is no longer there (the view was rebuilt).');
    }
  }
  renderDocuments();
  checkEditedDocument();
  search.schedule(0);
  viewStatus.schedule(150);
}

client.subscribe('stats', { key: 'totals' }, (state) => renderTotals(state.get('totals')));

// --- search ---

const search = {
  timer: null,
  running: false,
  again: false,
  schedule(delayMs) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delayMs);
  },
  async run() {
    const q = el.search.value.trim();
    if (!q) {
      el.resultsPanel.hidden = true;
      return;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      const wait = { after: documentsOffset, timeoutMs: 10000 };
      let answer;
      if (area) {
        // The rules allow the search of one area at a time: both, merged.
        const [own, pub] = await Promise.all([area, 'public/'].map((prefix) =>
          client.query('search', 'search', { q, limit: 100, in: prefix }, wait)));
        const hits = [...own.hits, ...pub.hits].sort((a, b) => b.score - a.score ||
                                                               (a.id < b.id ? -1 : 1));
        answer = { offset: Math.min(own.offset, pub.offset), hits: hits.slice(0, 100) };
      } else {
        const params = publicOnly ? { q, limit: 100, in: 'public/' } : { q, limit: 100 };
        answer = await client.query('search', 'search', params, wait);
      }
      if (q === el.search.value.trim()) renderResults(q, answer);
    } catch (e) {
      el.resultsMeta.textContent = `Search failed: ${e.message}`;
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.run();
      }
    }
  },
};

el.search.addEventListener('input', () => search.schedule(120));
el.search.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    el.search.value = '';
    search.schedule(0);
  }
});

// --- rendering ---

function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

function wordsOf(text) {
  return new Set((text.match(WORD) || []).map((w) => w.toLowerCase()));
}

// `text` with the words in `words` wrapped in <mark>.
function highlighted(text, words) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(WORD)) {
    if (!words.has(m[0].toLowerCase())) continue;
    fragment.append(text.slice(last, m.index), node('mark', '', m[0]));
    last = m.index + m[0].length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

// About `length` characters of `text`, around the first word of `words`.
function snippet(text, words, length = 180) {
  const flat = text.replace(/\s+/g, ' ').trim();
  let start = 0;
  if (words) {
    for (const m of flat.matchAll(WORD)) {
      if (words.has(m[0].toLowerCase())) {
        start = Math.max(0, m.index - 40);
        break;
      }
    }
  }
  if (start > 0) {
    const space = flat.indexOf(' ', start);
    if (space >= 0 && space < start + 20) start = space + 1;
  }
  let s = flat.slice(start, start + length);
  if (start > 0) s = '…' + s;
  if (start + length < flat.length) s += '…';
  return s;
}

function flashClass(li, id) {
  const t = changedAt.get(id);
  if (t === undefined) return;
  const age = performance.now() - t;
  if (age > FLASH_MS) {
    changedAt.delete(id);
    return;
  }
  li.classList.add('flash');
  li.style.animationDelay = `-${Math.round(age)}ms`;
}

function renderDocuments() {
  const sorted = [...documents.entries()].sort((a, b) => b[1].updated - a[1].updated ||
                                                         (a[0] < b[0] ? -1 : 1));
  el.docCount.textContent = String(sorted.length);
  el.documentsEmpty.hidden = sorted.length > 0;
  const items = [];
  for (const [id, doc] of sorted.slice(0, MAX_LISTED)) {
    const li = node('li', 'doc');
    li.dataset.id = id;
    if (id === editor.id) li.classList.add('selected');
    flashClass(li, id);
    const main = node('div', 'doc-main');
    main.append(node('div', 'doc-title', doc.title || '(untitled)'),
                node('div', 'doc-snippet', snippet(doc.text || '')),
                node('div', 'doc-meta', `${id} · offset ${doc.updated}`));
    const actions = node('div', 'doc-actions');
    const edit = node('button', 'icon-button', 'Edit');
    edit.type = 'button';
    edit.dataset.action = 'edit';
    const del = node('button', 'icon-button danger', 'Delete');
    del.type = 'button';
    del.dataset.action = 'delete';
    actions.append(edit, del);
    li.append(main, actions);
    items.push(li);
  }
  if (sorted.length > MAX_LISTED) {
    items.push(node('li', 'more', `and ${sorted.length - MAX_LISTED} more — use the search`));
  }
  el.documents.replaceChildren(...items);
}

function renderResults(q, answer) {
  const words = wordsOf(q);
  const hits = answer.hits || [];
  el.resultsPanel.hidden = false;
  el.resultsEmpty.hidden = hits.length > 0 || words.size === 0;
  const n = hits.length;
  el.resultsMeta.textContent = words.size === 0
    ? 'Type letters or digits to search'
    : `${n === 100 ? '100+' : n} ${n === 1 ? 'match' : 'matches'} · search view at offset ${answer.offset}`;
  const items = hits.map((hit) => {
    const li = node('li', 'hit');
    li.dataset.id = hit.id;
    flashClass(li, hit.id);
    const title = node('div', 'hit-title');
    title.append(highlighted(hit.title || '(untitled)', words));
    const doc = documents.get(hit.id);
    const text = node('div', 'hit-snippet');
    if (doc) text.append(highlighted(snippet(doc.text || '', words), words));
    const meta = node('div', 'hit-meta', `${hit.id} · score ${Number(hit.score).toFixed(3)}`);
    li.append(title, text, meta);
    return li;
  });
  el.results.replaceChildren(...items);
}

function renderTotals(t) {
  if (!t) {
    el.totals.textContent = 'No documents yet';
    return;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  el.totals.textContent = `${plural(t.documents, 'document')} · ${plural(t.puts, 'put')} · ` +
                          `${plural(t.deletes, 'delete')}`;
}

function showConnection(status, detail) {
  el.connection.dataset.state = status;
  if (status === 'open') {
    el.connectionText.textContent = 'Live';
  } else if (status === 'connecting') {
    el.connectionText.textContent = detail.attempt ? 'Reconnecting…' : 'Connecting…';
  } else if (detail && detail.delayMs !== undefined) {
    el.connectionText.textContent = `Offline · retrying in ${Math.ceil(detail.delayMs / 1000)} s`;
  } else {
    el.connectionText.textContent = 'Offline';
  }
}

// Polls /v1/views every second, and soon after each change of `documents`.
const viewStatus = {
  timer: null,
  due: 0,
  running: false,
  refused: false,  // /v1/views is admin-only in auth mode
  schedule(delayMs) {
    if (this.refused) return;
    const due = Date.now() + delayMs;
    if (this.timer && this.due <= due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => this.poll(), delayMs);
  },
  async poll() {
    this.timer = null;
    if (this.running) {
      this.schedule(100);
      return;
    }
    this.running = true;
    try {
      const { views } = await client.views();
      el.viewStatus.replaceChildren(...views.map((v) => {
        const span = node('span', `view view-${v.status}`);
        span.title = v.error ? `${v.status}: ${v.error}` : v.status;
        span.append(node('span', 'dot'), node('b', '', v.name), ` v${v.version} ${v.offset}`,
                    node('span', 'lag', ` lag ${v.lag}`));
        // A version built beside the served one: its progress until cutover.
        for (const b of (v.versions || []).filter((x) => x.role === 'building')) {
          const eta = b.eta_seconds == null ? '' : `, ${Math.ceil(b.eta_seconds)} s left`;
          span.append(node('span', 'lag building',
                           ` · building v${b.version}: ${b.offset} (${Math.round(b.events_per_second)}/s${eta})`));
        }
        return span;
      }));
    } catch (e) {
      if (e.code === 'unauthorized' || e.code === 'forbidden') {
        el.viewStatus.textContent = 'views: for admins only';
        this.refused = true;
        this.running = false;
        return;  // no more polling
      }
      el.viewStatus.textContent = 'views: server unreachable';
    } finally {
      if (this.running) {
        this.running = false;
        this.schedule(1000);
      }
    }
  },
};
viewStatus.schedule(0);

// --- the editor ---

function message(text, kind = 'info', action) {
  el.formMessage.replaceChildren(text);
  el.formMessage.dataset.kind = kind;
  if (action) {
    const b = node('button', 'link-button', action.label);
    b.type = 'button';
    b.addEventListener('click', action.run, { once: true });
    el.formMessage.append(' ', b);
  }
}

function notice(text, action) {
  el.editorNotice.hidden = !text;
  el.editorNotice.replaceChildren(text || '');
  if (action) {
    const b = node('button', 'link-button', action.label);
    b.type = 'button';
    b.addEventListener('click', action.run, { once: true });
    el.editorNotice.append(' ', b);
  }
}

function openDocument(id) {
  const doc = documents.get(id);
  if (!doc) return;
  editor.id = id;
  editor.updated = doc.updated;
  el.id.value = id;
  el.id.readOnly = true;
  el.title.value = doc.title;
  el.text.value = doc.text;
  el.editorHeading.textContent = 'Edit document';
  el.del.hidden = false;
  notice('');
  message('');
  renderDocuments();
  if (window.matchMedia('(max-width: 860px)').matches) {
    el.editor.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }
  el.title.focus({ preventScroll: true });
}

function newDocument() {
  editor.id = null;
  editor.updated = 0;
  el.editor.reset();
  el.author.value = sessionStorage.getItem('docsearch-author') || '';  // not per document
  el.id.readOnly = false;
  el.editorHeading.textContent = 'New document';
  el.del.hidden = true;
  notice('');
  renderDocuments();
}

// Tells the editor's user when someone else changed or deleted the document.
function checkEditedDocument() {
  if (editor.id === null || editor.saving) return;
  const doc = documents.get(editor.id);
  if (!doc) {
    // Not yet in the list (our own save, not received yet) is not deleted.
    if (documentsOffset >= editor.updated) {
      notice('This document was deleted elsewhere. Saving creates it again.');
    }
  } else if (doc.updated > editor.updated) {
    notice(`Someone else changed this document (offset ${doc.updated}).`, {
      label: 'Load their version',
      run: () => openDocument(editor.id),
    });
  }
}

function slug(title) {
  const base = title.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\p{L}\p{Nd}]+/gu, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'doc';
  return `${base}-${newIdempotencyKey().slice(0, 4)}`;
}

// The subject of the page's events (README.md, "Events"): the token's `sub`
// in auth mode, else the Author field (kept for the tab); none when empty.
// `POST /v1/subjects/{subject}/forget` then forgets what that person wrote.
function withSubject(event) {
  const subject = token ? tokenSubject(token) : el.author.value.trim();
  return subject ? { ...event, subject } : event;
}
if (token) {
  el.author.hidden = true;
  document.querySelector('label[for="doc-author"]').hidden = true;
}
el.author.value = sessionStorage.getItem('docsearch-author') || '';
el.author.addEventListener('input', () => sessionStorage.setItem('docsearch-author', el.author.value));

async function saveDocument(id, title, text) {
  const { offsets } = await client.append(withSubject({ type: 'doc.put', key: id, data: { title, text } }));
  return offsets[0];
}

async function deleteDocument(id) {
  const previous = documents.get(id);
  const editing = id === editor.id;
  if (editing) editor.saving = true;  // our own delete: no "deleted elsewhere"
  let offsets;
  try {
    ({ offsets } = await client.append(withSubject({ type: 'doc.delete', key: id })));
  } finally {
    if (editing) editor.saving = false;
  }
  if (id === editor.id) newDocument();
  const title = previous ? `“${previous.title}”` : id;
  message(`Deleted ${title} at offset ${offsets[0]}.`, 'info', previous && {
    label: 'Undo',
    run: async () => {
      const offset = await saveDocument(id, previous.title, previous.text);
      message(`Restored ${title} at offset ${offset}.`);
    },
  });
}

el.editor.addEventListener('submit', async (e) => {
  e.preventDefault();
  const title = el.title.value.trim();
  if (!title) {
    message('A document needs a title.', 'error');
    return;
  }
  let id = editor.id ?? (el.id.value.trim() || slug(title));
  if (area && editor.id === null && !id.startsWith(area)) id = area + id;  // the user's area
  editor.saving = true;
  el.save.disabled = true;
  message('Saving…');
  try {
    const offset = await saveDocument(id, title, el.text.value);
    editor.id = id;
    editor.updated = offset;
    el.id.value = id;
    el.id.readOnly = true;
    el.editorHeading.textContent = 'Edit document';
    el.del.hidden = false;
    notice('');
    message(`Saved at offset ${offset}.`, 'ok');
    renderDocuments();
  } catch (err) {
    message(`Not saved: ${err.message}`, 'error');
  } finally {
    editor.saving = false;
    el.save.disabled = false;
    checkEditedDocument();
  }
});

el.id.addEventListener('input', () => {
  const id = el.id.value.trim();
  notice(editor.id === null && documents.has(id)
    ? `A document with id “${id}” exists: saving replaces it.` : '');
});

el.del.addEventListener('click', () => {
  if (editor.id !== null) deleteDocument(editor.id).catch((err) => message(err.message, 'error'));
});
el.clear.addEventListener('click', () => {
  newDocument();
  message('');
});
el.newDoc.addEventListener('click', () => {
  newDocument();
  message('');
  el.title.focus();
});

function onListClick(e) {
  const li = e.target.closest('li[data-id]');
  if (!li) return;
  const action = e.target.closest('button')?.dataset.action;
  if (action === 'delete') {
    deleteDocument(li.dataset.id).catch((err) => message(err.message, 'error'));
  } else {
    openDocument(li.dataset.id);
  }
}
el.documents.addEventListener('click', onListClick);
el.results.addEventListener('click', onListClick);
