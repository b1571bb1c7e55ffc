// The operator API: fetch with the bearer token, error JSON turned into messages a person can
// act on, and the event stream read with fetch() (EventSource cannot send an Authorization header).

const HINTS = {
  self_approval: 'You requested this call yourself. Separation of duties: another operator has to decide it.',
  already_voted: 'You have already voted on this approval. It needs another operator to reach its quorum.',
  not_pending: 'This approval has already been decided, so it cannot be voted on any more.',
  approval_expired: 'This approval expired before it was decided. The agent has been told; it must ask again.',
  approval_conflict: 'Someone else changed this approval at the same moment. It has been reloaded; look again.',
  invalid_grant: 'That grant length is not allowed here. Use fewer minutes, or approve without a grant.',
  already_revoked: 'That grant was already revoked.',
  not_found: 'It no longer exists (or never did). The list has been refreshed.',
  missing_token: 'No token was sent. Paste an operator token.',
  invalid_token: 'This token is not accepted by the operator listener. Use an operator token (issued with --operator), not an agent token.',
  token_expired: 'Your token has expired. Issue a new operator token and sign in again.',
  invalid_audience: 'This is not an operator token. The console accepts only operator tokens (gatekeeper token issue ... --operator); agent tokens are refused here.',
  malformed_token: 'That does not look like a token. Paste the whole JWT (three dot-separated parts).',
  invalid_signature: 'The token signature does not verify with this Gatekeeper\'s keys. Issue one from this deployment.',
  unknown_key: 'The token was signed with a key this Gatekeeper does not know. Issue one from this deployment.',
  invalid_issuer: 'The token was issued by someone this Gatekeeper does not trust.',
  store_unavailable: 'The approval store cannot be reached right now. Try again in a moment; nothing was decided.',
  store_closed: 'Gatekeeper is shutting down. Try again once it is back.',
  shutting_down: 'Gatekeeper is shutting down. Try again once it is back.',
  invalid_query: 'A filter value was not accepted.',
  unknown_field: 'The request carried a field the server does not accept.',
  payload_too_large: 'The comment is too long.',
};

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
    this.body = body || {};
  }

  // One sentence for people: what happened, and what to do about it.
  get advice() {
    const hint = HINTS[this.code];
    const said = this.body.message ? String(this.body.message) : '';
    if (hint && said && !hint.includes(said)) return `${hint} (server: ${said})`;
    if (hint) return hint;
    if (this.status === 0) return 'Gatekeeper cannot be reached. Check that it is running; retrying.';
    if (this.status >= 500) return `Gatekeeper failed to do this (${this.code}). Nothing was decided; try again.`;
    return said || `Request failed (${this.code}).`;
  }
}

// The API gives times in ISO 8601; the views do arithmetic on them, so every `*_at` (and a
// vote's or an event's `at`, a decision's `time`) becomes epoch seconds once, as it arrives. A call's own
// `arguments` are shown to the operator exactly as the agent sent them.
export function epochs(value) {
  if (Array.isArray(value)) return value.map(epochs);
  if (!value || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    const isTime = (k === 'at' || k === 'time' || k.endsWith('_at')) && typeof v === 'string';
    const parsed = isTime ? Date.parse(v) / 1000 : NaN;
    out[k] = isTime && Number.isFinite(parsed) ? parsed : k === 'arguments' ? v : epochs(v);
  }
  return out;
}

async function toError(resp) {
  let body = {};
  try {
    body = await resp.json();
  } catch {
    body = {};
  }
  if (!body || typeof body !== 'object') body = {};
  return new ApiError(resp.status, body.code, body.message, body);
}

export class Api {
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized || (() => {});
    this.clockSkew = 0; // server time minus local time, seconds
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.token}`, Accept: 'application/json', ...extra };
  }

  async request(method, path, body) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: this.headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (err) {
      throw new ApiError(0, 'network_error', String(err && err.message));
    }
    const date = resp.headers.get('Date');
    if (date) {
      const skew = (Date.parse(date) - Date.now()) / 1000;
      if (Number.isFinite(skew)) this.clockSkew = Math.abs(skew) > 2 ? skew : 0;
    }
    if (!resp.ok) {
      const err = await toError(resp);
      if (resp.status === 401) this.onUnauthorized(err);
      throw err;
    }
    return epochs(await resp.json());
  }

  now() {
    return Date.now() / 1000 + this.clockSkew;
  }

  whoami() { return this.request('GET', '/v1/whoami'); }
  config() { return this.request('GET', '/v1/console/config'); }
  pending() { return this.request('GET', '/v1/approvals?state=pending&limit=500'); }
  approval(id) { return this.request('GET', `/v1/approvals/${encodeURIComponent(id)}`); }
  explain(id) { return this.request('GET', `/v1/approvals/${encodeURIComponent(id)}/explain`); }
  vote(id, verdict, comment, grantMinutes) {
    const body = { comment };
    if (verdict === 'approve' && grantMinutes) body.grant_minutes = grantMinutes;
    return this.request('POST', `/v1/approvals/${encodeURIComponent(id)}/${verdict}`, body);
  }
  grants(activeOnly) { return this.request('GET', `/v1/grants?active=${activeOnly ? 'true' : 'false'}`); }
  revoke(id) { return this.request('POST', `/v1/grants/${encodeURIComponent(id)}/revoke`); }
  decisions(filters) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
    return this.request('GET', `/v1/decisions?${q}`);
  }
  auditStatus() { return this.request('GET', '/v1/audit/status'); }

  // Reads /v1/events until it ends or `signal` aborts. Calls onOpen() once connected, then
  // onEvent(name, data) per event. Throws ApiError on refusal or when the stream breaks.
  async events({ onOpen, onEvent, signal }) {
    let resp;
    try {
      resp = await fetch('/v1/events', {
        headers: this.headers({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        credentials: 'omit',
        signal,
      });
    } catch (err) {
      if (signal && signal.aborted) return;
      throw new ApiError(0, 'network_error', String(err && err.message));
    }
    if (!resp.ok) {
      const err = await toError(resp);
      if (resp.status === 401) this.onUnauthorized(err);
      throw err;
    }
    onOpen();
    const parser = new SseParser(onEvent);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch (err) {
      if (signal && signal.aborted) return;
      throw new ApiError(0, 'stream_broken', String(err && err.message));
    }
    if (!(signal && signal.aborted)) throw new ApiError(0, 'stream_ended', 'the event stream ended');
  }
}

// The text/event-stream format (WHATWG HTML §9.2.6): lines, "field: value", blank line dispatches.
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.name = '';
    this.data = [];
  }

  push(chunk) {
    this.buffer += chunk;
    for (;;) {
      const i = this.buffer.search(/[\r\n]/);
      if (i < 0) return;
      if (this.buffer[i] === '\r' && i === this.buffer.length - 1) return; // maybe half of \r\n
      const line = this.buffer.slice(0, i);
      const skip = this.buffer[i] === '\r' && this.buffer[i + 1] === '\n' ? 2 : 1;
      this.buffer = this.buffer.slice(i + skip);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        let data = this.data.join('\n');
        try {
          data = epochs(JSON.parse(data));
        } catch {
          /* not JSON: hand over the text */
        }
        this.onEvent(this.name || 'message', data);
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.name = value;
    else if (field === 'data') this.data.push(value);
  }
}
