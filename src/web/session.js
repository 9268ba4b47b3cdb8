// Sessions, API calls and live connections for the console and the driver app, over the public
// HTTP and WebSocket API only; the tracking page uses the reconnecting socket without a session.
//
// Where the tokens live: the access token (15 minutes) only in this module's memory; the
// refresh token in this origin's localStorage, under a key of its own per app, so that a reload
// or a second tab keeps the user signed in. localStorage is readable by scripts of this origin
// only, and the pages run under a CSP that admits no script but the server's own files (no
// inline script, no other host, no eval) and write every value with textContent, so no other
// origin and no injected script can read it. A cookie set by the server would hide it even from
// our own scripts, but the API speaks bearer tokens, not cookies, and a cookie would bring CSRF
// with it. sessionStorage would not survive into a second tab, which would then have to sign in
// again.
//
// The server rotates refresh tokens and ends a session whose refresh token is used twice, so
// two tabs must never refresh with the same token: every refresh runs under a Web Lock (one per
// app, shared by the tabs of this origin), reads the token from storage inside the lock and
// writes the new one before releasing it. Each tab then gets its own access token.

const ACCESS_MARGIN_MS = 30_000; // refresh this long before the access token expires
const MAX_BACKOFF_MS = 30_000;

/** An answer of the API that was not a success: HTTP status, machine code, human detail. */
export class ApiError extends Error {
  constructor(status, code, detail, errors) {
    super(detail || ('HTTP ' + status));
    this.status = status;
    this.code = code || 'http_' + status;
    this.errors = errors || [];
  }
}

/** The session ended: signed out here or in another tab, or the account was deactivated. */
export class SignedOut extends Error {
  constructor() { super('signed out'); this.status = 401; this.code = 'signed_out'; }
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  const detail = body && body.detail ? body.detail : response.statusText || ('HTTP ' + response.status);
  const errors = body && Array.isArray(body.errors) ? body.errors : [];
  const text = errors.length ? detail + ': ' + errors.map((e) => e.field + ' ' + e.message).join('; ') : detail;
  return new ApiError(response.status, body && body.code, text, errors);
}

/** Runs `work` holding the lock `name` across this origin's tabs (Web Locks, or a lease). */
async function withLock(name, work) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request(name, work);
  }
  // Without Web Locks (a plain-http origin other than localhost): a lease in localStorage,
  // checked after it was written so that two tabs racing for it see who won.
  const me = Math.random().toString(36).slice(2);
  const key = name + '.lease';
  for (let i = 0; i < 100; i++) {
    const held = JSON.parse(localStorage.getItem(key) || 'null');
    if (!held || held.until < Date.now()) {
      localStorage.setItem(key, JSON.stringify({ me, until: Date.now() + 10_000 }));
      await new Promise((r) => setTimeout(r, 50));
      const now = JSON.parse(localStorage.getItem(key) || 'null');
      if (now && now.me === me) {
        try { return await work(); } finally { localStorage.removeItem(key); }
      }
    }
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 100));
  }
  return work();
}

/** A signed-in user of one app (`console` or `driver`), limited to `roles`. */
export class Session {
  constructor(app, roles) {
    this.app = app;
    this.roles = roles;
    this.key = 'medex.' + app + '.refresh_token';
    this.lock = 'medex.' + app + '.refresh';
    this.access = null;
    this.accessUntil = 0;
    this.user = null;
    this.refreshing = null;
    this.signedOutHandlers = [];
    window.addEventListener('storage', (e) => {
      // Another tab signed out: so does this one.
      if (e.key === this.key && !e.newValue && this.user) this.ended();
    });
  }

  /** Calls `handler` when the session ends (here, in another tab, or refused by the server). */
  onSignedOut(handler) { this.signedOutHandlers.push(handler); }

  ended() {
    const wasIn = !!this.user;
    this.access = null;
    this.accessUntil = 0;
    this.user = null;
    if (wasIn) for (const h of this.signedOutHandlers) h();
  }

  adopt(body) {
    if (!this.roles.includes(body.user.role)) {
      throw new ApiError(403, 'wrong_role', 'This account (' + body.user.role + ') cannot use this app.');
    }
    localStorage.setItem(this.key, body.refresh_token);
    this.access = body.access_token;
    this.accessUntil = Date.now() + Math.max(60, body.expires_in || 900) * 1000 - ACCESS_MARGIN_MS;
    this.user = body.user;
  }

  /** Signs in; refuses accounts whose role this app is not for (and revokes their session). */
  async login(email, password) {
    const response = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ email, password }),
      credentials: 'omit',
      cache: 'no-store'
    });
    if (!response.ok) throw await errorOf(response);
    const body = await response.json();
    try {
      this.adopt(body);
    } catch (e) {
      await this.revoke(body.refresh_token);
      throw e;
    }
    return this.user;
  }

  /** The stored session, refreshed; null when there is none. */
  async resume() {
    if (!localStorage.getItem(this.key)) return null;
    try {
      await this.refresh();
      return this.user;
    } catch (e) {
      if (e instanceof SignedOut) return null;
      throw e;
    }
  }

  /** New tokens from the stored refresh token, one tab at a time. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = withLock(this.lock, () => this.refreshHoldingLock())
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async refreshHoldingLock() {
    const token = localStorage.getItem(this.key);
    if (!token) { this.ended(); throw new SignedOut(); }
    const response = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ refresh_token: token }),
      credentials: 'omit',
      cache: 'no-store'
    });
    if (response.status === 401 || response.status === 403) {
      // Only forget the token that failed: another tab may have stored a newer one meanwhile.
      if (localStorage.getItem(this.key) === token) localStorage.removeItem(this.key);
      this.ended();
      throw new SignedOut();
    }
    if (!response.ok) throw await errorOf(response);
    this.adopt(await response.json());
  }

  /** A valid access token, refreshed when it is about to expire. */
  async token() {
    if (!this.access || Date.now() >= this.accessUntil) await this.refresh();
    return this.access;
  }

  /** Forgets the access token, so the next call refreshes (after a socket refused it). */
  invalidate() { this.accessUntil = 0; }

  async revoke(refreshToken) {
    try {
      await fetch('/api/auth/logout', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
        credentials: 'omit',
        cache: 'no-store'
      });
    } catch (e) { /* offline: the token expires on its own */ }
  }

  /** Signs out: the server revokes the refresh token, every tab of this app forgets it. */
  async logout() {
    const token = localStorage.getItem(this.key);
    localStorage.removeItem(this.key);
    if (token) await this.revoke(token);
    this.ended();
  }

  /**
   * Calls the API: `path` under /api, `options.body` sent as JSON, `options.form` as multipart,
   * `options.query` as parameters. Answers the parsed JSON (or the Response with `raw`). A 401
   * refreshes once and retries.
   */
  async api(method, path, options = {}) {
    let url = '/api' + path;
    if (options.query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(options.query)) if (v !== undefined && v !== null && v !== '') params.set(k, v);
      const qs = params.toString();
      if (qs) url += (url.includes('?') ? '&' : '?') + qs;
    }
    for (let attempt = 0; ; attempt++) {
      const headers = { accept: options.accept || 'application/json', authorization: 'Bearer ' + await this.token() };
      let body;
      if (options.form) {
        body = options.form;
      } else if (options.body !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(options.body);
      }
      const response = await fetch(url, { method, headers, body, credentials: 'omit', cache: 'no-store' });
      if (response.status === 401 && attempt === 0) {
        this.invalidate();
        continue;
      }
      if (response.status === 401) {
        this.ended();
        throw new SignedOut();
      }
      if (!response.ok) throw await errorOf(response);
      if (options.raw) return response;
      if (response.status === 204) return null;
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
  }
}

/**
 * A WebSocket to `path` that reconnects on its own with backoff (1 s, 2 s, 4 s … 30 s, with
 * jitter, so that many pages do not come back at once), authenticated with the session's access
 * token as the `bearer` subprotocol so that the token never appears in a URL (no session: an
 * anonymous socket, as the tracking page's). `onMessage(message)` gets each parsed message,
 * `onState(state)` one of `connecting`, `live`, `reconnecting`, `offline`, `stopped`;
 * `beforeRetry(failures)`, when given, may answer false (or a promise of false) to stop trying.
 */
export class LiveSocket {
  constructor(session, path, { onMessage, onState, beforeRetry }) {
    this.session = session;
    this.path = path;
    this.onMessage = onMessage;
    this.onState = onState || (() => {});
    this.beforeRetry = beforeRetry || null;
    this.ws = null;
    this.failures = 0;
    this.timer = null;
    this.stopped = true;
    this.retryAt = 0;
    this.wake = () => { if (!this.stopped && !this.ws) { this.failures = Math.min(this.failures, 1); this.connect(); } };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', this.wake);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.wake);
    document.removeEventListener('visibilitychange', this.wake);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'bye');
    this.onState('stopped');
  }

  /** Whether a reconnect is scheduled (at `retryAt`). */
  get waiting() { return !!this.timer; }

  /** Whether the socket is open now. */
  get open() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  /** Sends `message` as JSON; false when the socket is not open. */
  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.ws) return;
    this.onState(this.failures ? 'reconnecting' : 'connecting');
    let protocols = [];
    if (this.session) {
      try {
        protocols = ['bearer', await this.session.token()];
      } catch (e) {
        if (e instanceof SignedOut) return; // the app shows the login
        return this.retry();
      }
    }
    if (this.stopped || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(scheme + '//' + location.host + this.path, protocols);
    } catch (e) {
      return this.retry();
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.failures = 0; this.onState('live'); };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message && typeof message === 'object') this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      // Refused before the upgrade (a browser cannot tell why) or closed for the token's sake:
      // the next attempt takes a fresh access token.
      if (this.session && (!opened || event.code === 1008)) this.session.invalidate();
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.failures += 1;
    const base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.max(0, this.failures - 1)));
    const delay = Math.round(base * (0.6 + Math.random() * 0.4));
    this.retryAt = Date.now() + delay;
    this.onState(navigator.onLine === false ? 'offline' : 'reconnecting');
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (this.beforeRetry) {
        let go = true;
        try { go = await this.beforeRetry(this.failures); } catch (e) { /* try anyway */ }
        if (!go) { this.timer = null; return; }
      }
      this.timer = null;
      this.connect();
    }, delay);
  }
}
