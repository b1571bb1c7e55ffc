// Gatekeeper operator console. Plain DOM, no framework, no build step.
// Untrusted text (arguments, comments, names) only ever goes into textContent, never innerHTML.
import { Api, ApiError } from './api.js';

const TOKEN_KEY = 'gatekeeper.operatorToken';
const $ = (sel) => document.querySelector(sel);

const state = {
  api: null,
  me: null,
  highRisk: ['net.*', 'compute.gpu:*', 'proc.inline_code:*', 'shell.opaque', 'cred.*'],
  view: 'queue',
  pending: new Map(), // id -> approval JSON
  order: [], // ids, newest first
  selected: null,
  detail: null, // {approval, explain}
  composing: null, // 'approve' | 'deny' while the comment box is armed
  stream: null, // AbortController
  busy: false,
  // An approval opened by its link (/console/approvals/<id>, from a webhook or a chat message).
  linked: linkedApproval(),
};

function linkedApproval() {
  const m = window.location.pathname.match(/^\/console\/approvals\/([A-Za-z0-9_-]{1,64})$/);
  return m ? m[1] : null;
}

// -- small helpers ---------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function clock(ts) {
  if (typeof ts !== 'number') return '—';
  const d = new Date(ts * 1000);
  return d.toLocaleString(undefined, { hour12: false });
}

function matches(name, pattern) {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

// Why an approval counts as high-risk: a list of reasons, empty when it does not.
function riskReasons(a) {
  const reasons = [];
  if ((a.required_approvals || 1) > 1) reasons.push(`needs ${a.required_approvals} operators (two-person rule)`);
  for (const cap of a.capabilities || []) {
    const p = state.highRisk.find((pat) => matches(cap, pat));
    if (p) reasons.push(`${cap} (matches ${p})`);
  }
  return reasons;
}

function announce(text) {
  const node = $('#announcer');
  node.textContent = '';
  window.setTimeout(() => { node.textContent = text; }, 30);
}

let toastTimer = 0;
function toast(text, kind = 'error') {
  const node = $('#toast');
  node.textContent = text;
  node.dataset.kind = kind;
  node.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  node.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => { node.hidden = true; }, kind === 'error' ? 9000 : 4000);
}

function explainError(err) {
  return err instanceof ApiError ? err.advice : `Something went wrong: ${err && err.message ? err.message : err}`;
}

// -- sign-in ---------------------------------------------------------------------------------

function showSignIn(message) {
  stopStream();
  state.api = null;
  state.me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('#nav').hidden = true;
  $('#session').hidden = true;
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('#signin').hidden = false;
  $('#signin-error').textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

async function signIn(token) {
  const api = new Api(token, () => {});
  const me = await api.whoami(); // throws ApiError: 401 for agent tokens, bad signatures, expiry
  let config = null;
  try {
    config = await api.config();
  } catch {
    config = null;
  }
  api.onUnauthorized = (err) => showSignIn(`Signed out: ${err.advice}`);
  state.api = api;
  state.me = me;
  if (config && Array.isArray(config.high_risk)) state.highRisk = config.high_risk.map(String);
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  $('#session').hidden = false;
  $('#whoami').textContent = `${me.subject}${me.roles && me.roles.length ? ` (${me.roles.join(', ')})` : ''}`;
  show('queue');
  startStream();
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('#token').value.trim().replace(/^Bearer\s+/i, '');
  const error = $('#signin-error');
  if (!token) {
    error.textContent = 'Paste an operator token first.';
    $('#token').focus();
    return;
  }
  error.textContent = '';
  $('#signin-submit').disabled = true;
  try {
    await signIn(token);
  } catch (err) {
    error.textContent = `Sign-in refused: ${explainError(err)}`;
    $('#token').focus();
  } finally {
    $('#signin-submit').disabled = false;
  }
});
$('#token').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    $('#signin-form').requestSubmit();
  }
});
$('#signout').addEventListener('click', () => showSignIn('Signed out.'));

// -- views -----------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('#nav button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== `view-${view}`;
  if (view === 'grants') loadGrants();
  if (view === 'decisions') loadDecisions();
  if (view === 'audit') loadAudit();
}

for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));

// -- live queue ------------------------------------------------------------------------------

function setLive(kind, text) {
  const node = $('#live');
  node.dataset.state = kind;
  node.textContent = text;
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

async function startStream() {
  stopStream();
  const ctrl = new AbortController();
  state.stream = ctrl;
  let delay = 500;
  while (!ctrl.signal.aborted && state.api) {
    try {
      await state.api.events({
        signal: ctrl.signal,
        onOpen: () => {
          delay = 500;
          setLive('live', 'live');
          reloadQueue();
        },
        onEvent: onQueueEvent,
      });
    } catch (err) {
      if (ctrl.signal.aborted || !state.api) return;
      if (err instanceof ApiError && err.status === 401) return; // signed out already
      setLive('down', `reconnecting (${err instanceof ApiError ? err.code : 'error'})`);
    }
    if (ctrl.signal.aborted) return;
    await new Promise((r) => window.setTimeout(r, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

async function reloadQueue() {
  try {
    const { approvals } = await state.api.pending();
    state.pending = new Map(approvals.map((a) => [a.id, a]));
    state.order = approvals.map((a) => a.id);
    renderQueue();
    if (state.linked) {
      const id = state.linked;
      state.linked = null;
      select(id, { focus: false }); // shown whatever its state: the link may outlive the decision
    } else if (!state.selected && state.order.length) select(state.order[0], { focus: false });
    else if (state.selected) refreshDetail();
  } catch (err) {
    toast(`Could not load the queue: ${explainError(err)}`);
  }
}

function onQueueEvent(kind, data) {
  if (!data || typeof data !== 'object') return;
  const a = data.approval;
  if (kind === 'grant' || kind === 'revoked') {
    if (state.view === 'grants') loadGrants();
  }
  if (!a || !a.id) return;
  const known = state.pending.has(a.id);
  if (a.state === 'pending') {
    state.pending.set(a.id, a);
    if (!known) {
      state.order.unshift(a.id);
      announce(`New approval request: ${a.tool} from ${a.principal}.`);
    }
  } else if (known) {
    state.pending.delete(a.id);
    state.order = state.order.filter((id) => id !== a.id);
    announce(`${a.tool} from ${a.principal} is now ${a.state}.`);
  }
  renderQueue();
  if (state.selected === a.id) {
    if (state.detail) state.detail.approval = a;
    renderDetail();
  } else if (!state.selected && state.order.length) {
    select(state.order[0], { focus: false });
  }
}

function renderQueue() {
  const list = $('#queue-list');
  const now = state.api ? state.api.now() : Date.now() / 1000;
  list.replaceChildren(
    ...state.order.map((id) => {
      const a = state.pending.get(id);
      const risky = riskReasons(a).length > 0;
      const current = id === state.selected;
      return el(
        'li',
        {},
        el(
          'button',
          {
            type: 'button',
            class: 'item',
            'aria-current': current ? 'true' : null,
            dataset: { id },
            onclick: () => {
              select(id, { focus: false });
              // One column (a phone): bring what is asked, and the Decide bar, into view.
              if (ONE_COLUMN.matches) $('#detail').scrollIntoView({ block: 'start' });
            },
          },
          el('span', { class: 'item-tool', text: a.tool }),
          risky ? el('span', { class: 'badge risk', text: 'high-risk' }) : null,
          el('span', { class: 'item-who', text: a.principal }),
          el(
            'span',
            { class: 'item-meta' },
            el('span', { dataset: { age: a.created_at }, text: `${duration(now - a.created_at)} ago` }),
            ' · ',
            el('span', { dataset: { left: a.expires_at }, text: `${duration(a.expires_at - now)} left` }),
            ' · ',
            `${a.approvals}/${a.required_approvals} approvals`,
          ),
        ),
      );
    }),
  );
  $('#queue-empty').hidden = state.order.length > 0;
  $('#queue-count').textContent = String(state.order.length);
  document.title = state.order.length ? `(${state.order.length}) Gatekeeper · operator console` : 'Gatekeeper · operator console';
}

async function select(id, { focus } = { focus: true }) {
  state.selected = id;
  // The address bar holds the link to this approval, to copy into a chat or a ticket.
  window.history.replaceState(null, '', `/console/approvals/${encodeURIComponent(id)}`);
  state.composing = null;
  renderQueue();
  const btn = document.querySelector(`#queue-list button[data-id="${CSS.escape(id)}"]`);
  if (btn && focus) btn.focus();
  const cached = state.pending.get(id);
  state.detail = { approval: cached, explain: null };
  renderDetail();
  await refreshDetail();
}

async function refreshDetail() {
  const id = state.selected;
  if (!id) return;
  try {
    const [approval, explain] = await Promise.all([
      state.api.approval(id),
      state.api.explain(id).catch(() => null),
    ]);
    if (state.selected !== id) return;
    const composing = state.composing;
    const draft = $('#comment') ? $('#comment').value : '';
    state.detail = { approval, explain };
    renderDetail();
    if (composing) arm(composing, draft);
  } catch (err) {
    if (state.selected !== id) return;
    if (err instanceof ApiError && err.status === 404) {
      state.pending.delete(id);
      state.order = state.order.filter((x) => x !== id);
      state.selected = null;
      state.detail = null;
      renderQueue();
      renderDetail();
    }
    toast(`Could not load the approval: ${explainError(err)}`);
  }
}

function move(step) {
  if (!state.order.length) return;
  const i = state.order.indexOf(state.selected);
  const next = i < 0 ? 0 : Math.min(state.order.length - 1, Math.max(0, i + step));
  select(state.order[next], { focus: true });
}

// -- detail ----------------------------------------------------------------------------------

function section(title, ...body) {
  const id = `h-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  return el('section', { class: 'block', 'aria-labelledby': id }, el('h3', { id, text: title }), ...body);
}

function renderCommand(shell) {
  const parts = [];
  let at = 0;
  const text = shell.command;
  for (const m of shell.marks) {
    if (m.start > at) parts.push(text.slice(at, m.start));
    parts.push(
      el('mark', { title: m.capabilities.join(', '), 'aria-label': `${text.slice(m.start, m.end)} (dangerous: ${m.capabilities.join(', ')})` }, text.slice(m.start, m.end)),
    );
    at = m.end;
  }
  if (at < text.length) parts.push(text.slice(at));
  const commands = shell.commands.map((c) =>
    el(
      'li',
      { class: c.marked ? 'cmd marked' : 'cmd' },
      el('span', { class: 'cmd-program', text: c.program || '(assignment)' }),
      c.nested ? el('span', { class: 'badge', text: 'substitution' }) : null,
      el(
        'span',
        { class: 'tokens' },
        c.tokens.map((t) =>
          el(
            t.marked ? 'mark' : 'code',
            { class: `tok ${t.kind}`, title: t.marked ? `flagged: ${t.capabilities.join(', ')}` : t.kind },
            t.text,
          ),
        ),
      ),
    ),
  );
  return section(
    'Command',
    el('pre', { class: 'command', tabindex: '0', 'aria-label': `Shell command (${shell.argument})` }, el('code', {}, parts)),
    shell.parsed ? null : el('p', { class: 'warn', text: 'The shell parser could not read this command; it is shown split on spaces.' }),
    el('p', { class: 'muted small', text: `Parsed into ${shell.commands.length} command(s). Highlighted: the parts behind the capabilities that held this call.` }),
    el('ol', { class: 'cmds' }, commands),
    shell.unlocated.length
      ? el('p', { class: 'muted small', text: `Not tied to one place in the text: ${shell.unlocated.join(', ')}.` })
      : null,
  );
}

function renderCapabilities(a, explain) {
  const rows = explain
    ? explain.capabilities
    : (a.capabilities || []).map((name) => ({ name, evidence: '', outcome: 'unknown', flagged: false, reason: '' }));
  return section(
    'Capabilities',
    el(
      'ul',
      { class: 'caps' },
      rows.map((c) =>
        el(
          'li',
          { class: c.flagged ? 'cap flagged' : 'cap' },
          el('code', { class: 'cap-name', text: c.name }),
          el('span', { class: `badge ${c.outcome}`, text: c.flagged ? `${c.outcome} · why held` : c.outcome }),
          state.highRisk.some((p) => matches(c.name, p)) ? el('span', { class: 'badge risk', text: 'high-risk' }) : null,
          c.evidence ? el('span', { class: 'evidence' }, 'from ', el('code', { text: c.evidence })) : null,
          c.flagged && c.reason ? el('span', { class: 'cap-reason', text: c.reason }) : null,
        ),
      ),
    ),
    explain && explain.note ? el('p', { class: 'warn', text: explain.note }) : null,
  );
}

function renderDetail() {
  const root = $('#detail');
  const d = state.detail;
  if (!d || !d.approval) {
    root.replaceChildren(el('p', { class: 'muted placeholder', text: 'Select an approval to see what the agent wants to do and why it was held.' }));
    return;
  }
  const a = d.approval;
  const now = state.api.now();
  const risks = riskReasons(a);
  const pending = a.state === 'pending';
  const mine = state.me && a.principal === state.me.subject;
  const voted = state.me && (a.votes || []).some((v) => v.operator === state.me.subject);
  root.replaceChildren(
    ...[
    el(
      'header',
      { class: 'detail-head' },
      el('h2', { id: 'detail-title' }, el('code', { text: a.tool }), ' requested by ', el('span', { class: 'who', text: a.principal })),
      el(
        'p',
        { class: 'facts' },
        el('span', { class: `badge state ${a.state}`, text: a.state }),
        risks.length ? el('span', { class: 'badge risk', text: 'high-risk' }) : null,
        el('span', {}, 'roles: ', (a.roles || []).join(', ') || '—'),
        el('span', { dataset: { age: a.created_at }, text: `${duration(now - a.created_at)} ago` }),
        pending ? el('span', { class: 'left', dataset: { left: a.expires_at }, text: `${duration(a.expires_at - now)} left` }) : null,
      ),
      el(
        'div',
        { class: 'quorum' },
        el('label', { for: 'quorum-bar', text: `Quorum: ${a.approvals} of ${a.required_approvals} approvals` }),
        el('progress', { id: 'quorum-bar', max: a.required_approvals, value: a.approvals }),
      ),
    ),
    risks.length ? el('p', { class: 'risk-note', text: `High-risk: ${risks.join('; ')}.` }) : null,
    section('Why it was held', el('p', {}, el('strong', { text: 'Rule ' }), el('code', { text: a.rule || '—' })), el('p', { text: a.reason || '—' })),
    pending ? renderDecide(a, { mine, voted, risks }) : renderOutcome(a),
    d.explain && d.explain.shell ? renderCommand(d.explain.shell) : null,
    renderCapabilities(a, d.explain),
    section(
      'Arguments',
      el('pre', { class: 'json', tabindex: '0', 'aria-label': 'Full canonical arguments (JSON)' }, JSON.stringify(a.arguments, null, 2)),
      el('p', { class: 'muted small' }, 'Digest ', el('code', { text: a.digest })),
    ),
    section(
      'Votes',
      (a.votes || []).length
        ? el(
            'ul',
            { class: 'votes' },
            a.votes.map((v) =>
              el('li', {}, el('span', { class: `badge ${v.verdict}`, text: v.verdict }), ' ', el('strong', { text: v.operator }), ` at ${clock(v.at)}`, v.comment ? el('q', { text: v.comment }) : null),
            ),
          )
        : el('p', { class: 'muted', text: 'No votes yet.' }),
    ),
    ].filter(Boolean),
  );
}

function renderOutcome(a) {
  return el('p', { class: `outcome ${a.state}`, role: 'status' }, `This approval is ${a.state}`, a.decided_at ? ` (decided ${clock(a.decided_at)})` : '', '.');
}

const ONE_COLUMN = window.matchMedia('(max-width: 800px)');

function renderDecide(a, { mine, voted, risks }) {
  const warn = mine
    ? 'You requested this call yourself: another operator must decide it.'
    : voted
      ? 'You already voted; it needs another operator.'
      : '';
  const block = section(
    'Decide',
    warn ? el('p', { class: 'warn', text: warn }) : null,
    el(
      'form',
      { id: 'decide-form', class: 'decide', onsubmit: (ev) => { ev.preventDefault(); submitDecision(state.composing || 'approve'); } },
      el('label', { for: 'comment', id: 'comment-label', text: risks.length ? 'Comment (required for high-risk approvals; the agent sees a denial comment)' : 'Comment (the agent sees a denial comment)' }),
      el('textarea', {
        id: 'comment',
        rows: '2',
        maxlength: '4000',
        'aria-describedby': 'comment-help',
        onkeydown: (ev) => {
          if (ev.key === 'Enter' && !ev.shiftKey) {
            ev.preventDefault();
            submitDecision(state.composing || 'approve');
          } else if (ev.key === 'Escape') {
            ev.preventDefault();
            disarm();
          }
        },
      }),
      el('p', { id: 'comment-help', class: 'muted small', text: 'Enter submits the armed action (approve unless you pressed d); Shift+Enter adds a line; Esc cancels.' }),
      el(
        'div',
        { class: 'decide-row' },
        el('label', { for: 'grant', class: 'grant-label', text: 'Also grant for (minutes)' }),
        el('input', { id: 'grant', type: 'number', min: '1', step: '1', inputmode: 'numeric', placeholder: 'no grant' }),
        el('button', { type: 'button', id: 'approve-btn', class: 'approve', onclick: () => submitDecision('approve') }, 'Approve ', el('kbd', { text: 'a' })),
        el('button', { type: 'button', id: 'deny-btn', class: 'deny', onclick: () => submitDecision('deny') }, 'Deny ', el('kbd', { text: 'd' })),
      ),
      el('p', { id: 'decide-error', class: 'error', role: 'alert' }),
    ),
  );
  block.classList.add('decide-block'); // sticks to the bottom of a phone's screen
  return block;
}

function arm(verdict, draft) {
  const box = $('#comment');
  if (!box) return;
  state.composing = verdict;
  const form = $('#decide-form');
  form.dataset.armed = verdict;
  $('#comment-label').textContent = verdict === 'approve'
    ? 'Comment for your approval — Enter approves'
    : 'Reason for the denial (the agent sees it) — Enter denies';
  if (draft !== undefined) box.value = draft;
  box.focus();
}

function disarm() {
  state.composing = null;
  const form = $('#decide-form');
  if (form) delete form.dataset.armed;
  const btn = document.querySelector(`#queue-list button[data-id="${CSS.escape(state.selected || '')}"]`);
  if (btn) btn.focus();
}

async function submitDecision(verdict) {
  const d = state.detail;
  if (!d || !d.approval || d.approval.state !== 'pending' || state.busy) return;
  const a = d.approval;
  const comment = ($('#comment') ? $('#comment').value : '').trim();
  const grantRaw = $('#grant') ? $('#grant').value.trim() : '';
  const grant = grantRaw ? Number(grantRaw) : null;
  const error = $('#decide-error');
  error.textContent = '';
  if (grantRaw && !(grant > 0)) {
    error.textContent = 'Grant minutes must be a positive number, or empty for no grant.';
    $('#grant').focus();
    return;
  }
  if (verdict === 'approve') {
    const risks = riskReasons(a);
    if (risks.length) {
      if (!comment) {
        error.textContent = 'High-risk approvals need a comment saying why this is fine. Write one, then press Enter.';
        arm('approve');
        return;
      }
      const ok = await confirmDialog({
        title: `Approve a high-risk ${a.tool} call?`,
        body: [
          el('p', {}, 'Principal ', el('strong', { text: a.principal }), ' will be allowed to run this exact call once', grant ? ` and again for ${grant} minutes` : '', '.'),
          el('ul', {}, risks.map((r) => el('li', { text: r }))),
          el('p', {}, 'Your comment: ', el('q', { text: comment })),
        ],
        ok: 'Approve',
        danger: true,
      });
      if (!ok) {
        arm('approve');
        return;
      }
    }
  }
  state.busy = true;
  for (const b of document.querySelectorAll('#approve-btn, #deny-btn')) b.disabled = true;
  try {
    const updated = await state.api.vote(a.id, verdict, comment, verdict === 'approve' ? grant : null);
    state.composing = null;
    const next = nextAfter(a.id);
    if (updated.state === 'pending') {
      state.pending.set(a.id, updated);
      toast(`Your approval is recorded: ${updated.approvals} of ${updated.required_approvals}. Another operator must approve too.`, 'ok');
      state.detail.approval = updated;
      renderQueue();
      renderDetail();
    } else {
      state.pending.delete(a.id);
      state.order = state.order.filter((x) => x !== a.id);
      toast(`${verdict === 'approve' ? 'Approved' : 'Denied'}: ${a.tool} for ${a.principal}.`, 'ok');
      announce(`${a.tool} for ${a.principal} ${updated.state}.`);
      if (next) select(next, { focus: true });
      else {
        state.selected = null;
        state.detail = { approval: updated, explain: d.explain };
        renderQueue();
        renderDetail();
        $('#detail').focus();
      }
    }
  } catch (err) {
    const errNode = $('#decide-error');
    if (errNode) errNode.textContent = explainError(err);
    else toast(explainError(err));
    if (err instanceof ApiError && ['not_pending', 'approval_expired', 'approval_conflict', 'not_found'].includes(err.code)) refreshDetail();
  } finally {
    state.busy = false;
    for (const b of document.querySelectorAll('#approve-btn, #deny-btn')) b.disabled = false;
  }
}

function nextAfter(id) {
  const i = state.order.indexOf(id);
  const rest = state.order.filter((x) => x !== id);
  return rest.length ? rest[Math.min(Math.max(i, 0), rest.length - 1)] : null;
}

// -- confirmation dialog ---------------------------------------------------------------------

function confirmDialog({ title, body, ok, danger }) {
  const dialog = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-body').replaceChildren(...body);
  const okBtn = $('#confirm-ok');
  okBtn.replaceChildren(`${ok} `, el('kbd', { text: 'Enter' }));
  okBtn.className = danger ? 'primary danger' : 'primary';
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener('close', onClose);
      $('#confirm-cancel').removeEventListener('click', onCancel);
      $('#confirm-form').removeEventListener('submit', onSubmit);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onClose = () => done(false);
    const onCancel = () => done(false);
    const onSubmit = (ev) => { ev.preventDefault(); done(true); };
    dialog.addEventListener('close', onClose);
    $('#confirm-cancel').addEventListener('click', onCancel);
    $('#confirm-form').addEventListener('submit', onSubmit);
    dialog.showModal();
    okBtn.focus();
  });
}

// -- grants ----------------------------------------------------------------------------------

async function loadGrants() {
  if (!state.api) return;
  const tbody = $('#grants-table tbody');
  try {
    const { grants } = await state.api.grants(!$('#grants-all').checked);
    const now = state.api.now();
    tbody.replaceChildren(
      ...grants.map((g) => {
        const active = !g.revoked_at && g.expires_at > now;
        const status = g.revoked_at ? `revoked by ${g.revoked_by || '?'}` : active ? 'active' : 'expired';
        return el(
          'tr',
          {},
          el('td', { text: g.principal }),
          el('td', {}, el('code', { text: g.tool })),
          el('td', { text: g.granted_by }),
          el('td', { class: 'wrap', text: g.comment || '—' }),
          el('td', { text: String(g.uses) }),
          el('td', {}, active ? el('span', { dataset: { left: g.expires_at }, text: `${duration(g.expires_at - now)} left` }) : clock(g.expires_at)),
          el('td', {}, el('span', { class: `badge ${active ? 'allowed' : 'muted'}`, text: status })),
          el('td', {}, active ? el('button', { type: 'button', class: 'deny small', 'aria-label': `Revoke grant for ${g.tool} by ${g.principal}`, onclick: () => revokeGrant(g) }, 'Revoke') : null),
        );
      }),
    );
    $('#grants-empty').hidden = grants.length > 0;
  } catch (err) {
    toast(`Could not load grants: ${explainError(err)}`);
  }
}

async function revokeGrant(g) {
  const ok = await confirmDialog({
    title: 'Revoke this grant?',
    body: [el('p', {}, el('strong', { text: g.principal }), ' will have to ask again before running ', el('code', { text: g.tool }), ' with these arguments. The approval it came from is voided too.')],
    ok: 'Revoke',
    danger: true,
  });
  if (!ok) return;
  try {
    await state.api.revoke(g.id);
    toast('Grant revoked.', 'ok');
  } catch (err) {
    toast(`Could not revoke: ${explainError(err)}`);
  }
  loadGrants();
}

$('#grants-all').addEventListener('change', loadGrants);
$('#grants-refresh').addEventListener('click', loadGrants);

// -- recent decisions ------------------------------------------------------------------------

async function loadDecisions() {
  if (!state.api) return;
  const form = $('#decisions-form');
  const f = Object.fromEntries(new FormData(form).entries());
  const since = f.since ? String(Math.floor(state.api.now() - Number(f.since))) : '';
  const note = $('#decisions-note');
  try {
    const res = await state.api.decisions({ outcome: f.outcome, principal: f.principal.trim(), tool: f.tool.trim(), since, limit: 200 });
    const rows = res.decisions || [];
    $('#decisions-table tbody').replaceChildren(...nestConnections(rows).map(([r, depth]) => decisionRow(r, depth)));
    note.textContent = res.available === false
      ? 'This Gatekeeper keeps no recent-decision history (the in-memory buffer is not enabled).'
      : `${rows.length} decision(s) shown, newest first${rows.length >= 200 ? ' (first 200)' : ''}.`;
  } catch (err) {
    note.textContent = '';
    toast(`Could not load decisions: ${explainError(err)}`);
  }
}

// Connections through the egress gate are listed under the call that opened them (when that
// call is in the list), oldest first; a connection whose call is not shown stands on its own.
function nestConnections(rows) {
  const shown = new Set(rows.map((r) => r.decision_id));
  const children = new Map();
  for (const r of rows) {
    if (r.parent_decision_id && shown.has(r.parent_decision_id)) {
      if (!children.has(r.parent_decision_id)) children.set(r.parent_decision_id, []);
      children.get(r.parent_decision_id).unshift(r);
    }
  }
  const out = [];
  for (const r of rows) {
    if (r.parent_decision_id && shown.has(r.parent_decision_id)) continue;
    out.push([r, 0]);
    for (const c of children.get(r.decision_id) || []) out.push([c, 1]);
  }
  return out;
}

function bytes(n) {
  if (typeof n !== 'number') return '';
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${n} B`;
}

function decisionRow(r, depth) {
  const connection = r.entry === 'egress';
  const what = connection
    ? el('td', {}, depth ? '↳ ' : null, el('code', { text: r.target || '—' }), ' ', el('span', { class: 'muted', text: `${bytes(r.bytes_up)} ↑ ${bytes(r.bytes_down)} ↓` }))
    : el('td', {}, el('code', { text: r.tool || '—' }));
  return el(
    'tr',
    { class: depth ? 'connection' : '', 'data-decision-id': r.decision_id || '', 'data-parent': depth ? r.parent_decision_id : '' },
    el('td', { class: 'nowrap', text: clock(r.time) }),
    el('td', {}, el('span', { class: `badge ${r.outcome}`, text: r.outcome || '?' })),
    el('td', { text: r.principal || '—' }),
    what,
    el('td', { class: 'wrap' }, (r.capabilities || []).map((c) => el('code', { class: 'chip', text: c }))),
    el('td', { class: 'wrap' }, r.rule ? el('code', { text: r.rule }) : null, r.rule ? ' ' : null, r.reason || r.code || ''),
    el('td', { class: 'num', text: typeof r.latency_ms === 'number' ? `${r.latency_ms.toFixed(1)} ms` : '—' }),
  );
}

$('#decisions-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadDecisions();
});

// -- audit -----------------------------------------------------------------------------------

async function loadAudit() {
  if (!state.api) return;
  const panel = $('#audit-panel');
  try {
    const s = await state.api.auditStatus();
    const status = String(s.status || 'unknown');
    const good = ['ok', 'verified', 'intact', 'healthy'].includes(status);
    const bad = ['broken', 'tampered', 'error', 'failed'].includes(status);
    const rest = Object.entries(s).filter(([k]) => k !== 'status');
    panel.replaceChildren(
      el('p', { class: 'audit-status' }, 'Status: ', el('span', { class: `badge big ${good ? 'allowed' : bad ? 'denied' : 'muted'}`, text: status })),
      rest.length
        ? el('dl', { class: 'kv' }, rest.flatMap(([k, v]) => [el('dt', { text: k.replace(/_/g, ' ') }), el('dd', {}, el('code', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) }))]))
        : null,
      el('p', { class: 'muted small', text: `Checked ${clock(state.api.now())}.` }),
    );
  } catch (err) {
    panel.replaceChildren(el('p', { class: 'error', text: `Could not read the audit status: ${explainError(err)}` }));
  }
}

$('#audit-refresh').addEventListener('click', loadAudit);

// -- keyboard, help, ticking -----------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

$('#help-btn').addEventListener('click', () => $('#help-dialog').showModal());

document.addEventListener('keydown', (ev) => {
  if (!state.api || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
  if (document.querySelector('dialog[open]')) return;
  const key = ev.key;
  if (key === '?') {
    ev.preventDefault();
    $('#help-dialog').showModal();
    return;
  }
  const views = { 1: 'queue', 2: 'grants', 3: 'decisions', 4: 'audit' };
  if (views[key]) {
    ev.preventDefault();
    show(views[key]);
    return;
  }
  if (state.view !== 'queue') return;
  if (key === 'j' || key === 'ArrowDown' && ev.target.closest && ev.target.closest('#queue-list')) {
    ev.preventDefault();
    move(1);
  } else if (key === 'k' || key === 'ArrowUp' && ev.target.closest && ev.target.closest('#queue-list')) {
    ev.preventDefault();
    move(-1);
  } else if ((key === 'a' || key === 'd') && state.detail && state.detail.approval && state.detail.approval.state === 'pending') {
    ev.preventDefault();
    arm(key === 'a' ? 'approve' : 'deny');
  }
});

window.setInterval(() => {
  if (!state.api) return;
  const now = state.api.now();
  for (const n of document.querySelectorAll('[data-age]')) n.textContent = `${duration(now - Number(n.dataset.age))} ago`;
  for (const n of document.querySelectorAll('[data-left]')) {
    const left = Number(n.dataset.left) - now;
    n.textContent = left > 0 ? `${duration(left)} left` : 'expiring…';
    n.classList.toggle('urgent', left < 120);
  }
}, 1000);

// -- start -----------------------------------------------------------------------------------

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signIn(saved).catch((err) => showSignIn(`Please sign in again: ${explainError(err)}`));
} else {
  showSignIn('');
}
