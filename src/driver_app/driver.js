// The MedEx driver app, for a phone. Signs in (drivers only), follows /ws/driver for the active
// order and new assignments, and while on duty (available or busy) sends the browser's
// Geolocation positions over that socket every 4 s. Fixes taken while the socket is down are kept
// (in this origin's localStorage, so a reload keeps them too) and sent late, oldest first, as
// `locations` batches of at most 100 with their `recorded_at`. The delivery steps are HTTP calls
// of the public API; the photo and the signature are uploaded before `delivered`. A driver may
// hold several orders (a run): "Next stop" shows the first stop of GET /drivers/{id}/run, read
// again whenever an order of the run changes, and the delivery panel follows that stop's order
// (an assignment waiting for Accept comes first; a handover or a failed attempt under way stays).
import { MapView, validPoint } from './map.js';
import { Session, LiveSocket, SignedOut } from './session.js';
import {
  h, replace, money, km, when, utcOffset, notice, busy, runStops, stopEta, stopWindow,
  STATUS_LABELS, DRIVER_STATUS_LABELS, FAILURE_REASONS
} from './ui.js';

const $ = (id) => document.getElementById(id);
const session = new Session('driver', ['driver']);
const app = $('app');
const say = notice($('notice'));
const SEND_EVERY_MS = 4000;
const MAX_BATCH = 100;
const MAX_KEPT = 2000;
const KEEP_FOR_MS = 23 * 3600 * 1000; // the server takes fixes up to 24 h old

const state = {
  me: null,
  driver: null,  // GET /drivers/{id}, then kept current
  job: null,     // the order the delivery panel shows
  orders: new Map(), // id → the orders of the run, as last seen
  run: null,     // GET /drivers/{id}/run, as last answered
  socket: null,
  watch: null,
  timer: null,
  latest: null,  // the newest position from the browser
  lastQueuedAt: 0,
  queue: [],     // fixes not yet sent, oldest first
  inflight: null, // the last batch sent, until the next tick (re-queued if refused as too soon)
  minIntervalMs: 1000,
  lastSentAt: 0
};

function fail(error) {
  if (error instanceof SignedOut) return;
  say(error.message || String(error), 'error');
}

function setConnection(s) {
  const labels = { idle: 'Signed out', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline', stopped: 'Not connected' };
  $('connection').setAttribute('data-state', s);
  $('connection-text').textContent = labels[s] || s;
  if (s === 'live') flush();
  renderLocationLine();
}

// ---------------------------------------------------------------------------------------------
// Signing in

async function start() {
  session.onSignedOut(showLogin);
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', async () => {
    stopSharing();
    await session.logout();
  });
  $('go-available').addEventListener('click', (e) => busy(e.currentTarget, () => setStatus('available')).catch(fail));
  $('go-offline').addEventListener('click', (e) => busy(e.currentTarget, () => setStatus('offline')).catch(fail));
  wireJob();
  let user = null;
  try { user = await session.resume(); } catch (e) { fail(e); }
  if (user) await enter(); else showLogin();
}

function showLogin() {
  stopSharing();
  if (state.socket) state.socket.stop();
  state.socket = null;
  setConnection('idle');
  app.hidden = true;
  $('login-screen').hidden = false;
  $('login-email').focus();
}

async function onLogin(e) {
  e.preventDefault();
  const error = $('login-error');
  error.hidden = true;
  try {
    await busy(e.submitter, () => session.login($('login-email').value.trim(), $('login-password').value));
    $('login-password').value = '';
    await enter();
  } catch (err) {
    error.textContent = err.status === 401 ? 'Wrong e-mail or password.' : err.message;
    error.hidden = false;
  }
}

async function enter() {
  state.me = await session.api('GET', '/auth/me');
  state.driver = await session.api('GET', '/drivers/' + state.me.driver_id);
  state.queue = loadQueue();
  $('login-screen').hidden = true;
  app.hidden = false;
  $('driver-name').textContent = state.driver.full_name;
  renderDuty();
  state.socket = new LiveSocket(session, '/ws/driver', { onMessage, onState: setConnection });
  state.socket.start();
  loadEarnings();
}

// ---------------------------------------------------------------------------------------------
// Duty: status and location sharing

async function setStatus(status) {
  try {
    state.driver = await session.api('PATCH', '/drivers/' + state.driver.id + '/status', { body: { status } });
  } catch (e) {
    if (e.status === 409 && status === 'offline') throw new Error('Finish or hand back the current delivery before going offline.');
    throw e;
  }
  renderDuty();
}

function onDuty() {
  return state.driver && (state.driver.status === 'available' || state.driver.status === 'busy');
}

function renderDuty() {
  const s = state.driver.status;
  const el = $('duty-status');
  el.textContent = DRIVER_STATUS_LABELS[s] || s;
  el.setAttribute('data-status', s);
  $('go-available').hidden = s === 'available' || s === 'busy';
  $('go-offline').hidden = s === 'offline';
  $('go-offline').disabled = s === 'busy';
  if (onDuty()) startSharing(); else stopSharing();
  $('waiting').hidden = !!state.job || !onDuty();
  renderLocationLine();
}

function renderLocationLine() {
  const line = $('location-line');
  if (!state.driver) return;
  if (!onDuty()) { line.textContent = 'Location not shared while off duty.'; return; }
  const waiting = state.queue.length;
  let text = state.latest ? 'Sharing your location every 4 s.' : 'Waiting for your location…';
  if (waiting && !(state.socket && state.socket.open)) text += ' ' + waiting + ' position' + (waiting === 1 ? '' : 's') + ' kept until the connection is back.';
  line.textContent = text;
}

function startSharing() {
  if (state.timer) return;
  if (!('geolocation' in navigator)) { say('This browser cannot share a location.', 'error'); return; }
  const onPosition = (p) => { state.latest = p; renderLocationLine(); if (state.job) renderMap(); };
  const onError = (e) => say('Location: ' + (e.message || 'not available') + '. Allow location for this site to share it.', 'error');
  state.watch = navigator.geolocation.watchPosition(onPosition, onError, { enableHighAccuracy: true, maximumAge: 3000, timeout: 20000 });
  state.timer = setInterval(tick, SEND_EVERY_MS);
  // A fresh position at once rather than on the first tick.
  navigator.geolocation.getCurrentPosition((p) => { onPosition(p); tick(); }, () => {}, { enableHighAccuracy: true, maximumAge: 0, timeout: 20000 });
}

function stopSharing() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  state.watch = null;
  clearInterval(state.timer);
  state.timer = null;
}

function tick() {
  if (!onDuty()) return;
  // Ask again too: some browsers report a position only when it changes.
  navigator.geolocation.getCurrentPosition((p) => { state.latest = p; }, () => {}, { enableHighAccuracy: true, maximumAge: 2000, timeout: 3000 });
  const p = state.latest;
  if (p && p.timestamp > state.lastQueuedAt) {
    state.lastQueuedAt = p.timestamp;
    const c = p.coords;
    const fix = { latitude: c.latitude, longitude: c.longitude, recorded_at: new Date(p.timestamp).toISOString() };
    if (Number.isFinite(c.accuracy)) fix.accuracy = c.accuracy;
    if (Number.isFinite(c.speed) && c.speed !== null) fix.speed = c.speed;
    if (Number.isFinite(c.heading) && c.heading !== null) fix.heading = c.heading;
    state.queue.push(fix);
    if (state.queue.length > MAX_KEPT) state.queue.splice(0, state.queue.length - MAX_KEPT);
  }
  state.inflight = null;
  flush();
  renderLocationLine();
}

/** Sends what is queued: one fix as `location`, a backlog as one `locations` batch per tick. */
function flush() {
  const socket = state.socket;
  const cutoff = Date.now() - KEEP_FOR_MS;
  state.queue = state.queue.filter((f) => Date.parse(f.recorded_at) > cutoff);
  if (!socket || !socket.open || !state.queue.length || state.inflight) { saveQueue(); return; }
  if (Date.now() - state.lastSentAt < state.minIntervalMs) { saveQueue(); return; }
  const batch = state.queue.splice(0, MAX_BATCH);
  const sent = batch.length === 1
    ? socket.send(Object.assign({ type: 'location' }, batch[0]))
    : socket.send({ type: 'locations', fixes: batch });
  if (sent) {
    state.inflight = batch;
    state.lastSentAt = Date.now();
  } else {
    state.queue.unshift(...batch);
  }
  saveQueue();
  renderLocationLine();
}

function queueKey() { return 'medex.driver.fixes.' + (state.driver ? state.driver.id : ''); }

function loadQueue() {
  try { return JSON.parse(localStorage.getItem(queueKey()) || '[]').filter((f) => validPoint(f)); } catch (e) { return []; }
}

function saveQueue() {
  try {
    if (state.queue.length) localStorage.setItem(queueKey(), JSON.stringify(state.queue));
    else localStorage.removeItem(queueKey());
  } catch (e) { /* storage full: they stay in memory */ }
}

// ---------------------------------------------------------------------------------------------
// Live messages

function onMessage(m) {
  switch (m.type) {
    case 'connected':
      state.minIntervalMs = Math.max(0, m.min_fix_interval_ms || 0);
      state.driver.status = m.status;
      state.orders.clear();
      setJob(m.active_order || null);
      renderDuty();
      flush();
      refreshRun();
      break;
    case 'assignment':
      setJob(m.order);
      say('New assignment: ' + m.order.order_number, 'ok');
      refreshDriver();
      refreshRun();
      break;
    case 'unassigned':
      state.orders.delete(m.order_id);
      if (state.job && state.job.id === m.order_id) setJob(null);
      say(m.order_number + ' was given to another driver.');
      refreshDriver();
      refreshRun();
      break;
    case 'order_status':
      if (state.job && state.job.id === m.order_id) setJob(m.order);
      else remember(m.order);
      refreshDriver();
      refreshRun();
      break;
    case 'error':
      if (m.code === 'rate_limited' && state.inflight) {
        // Too soon after the last report: send the batch again on the next tick.
        state.queue.unshift(...state.inflight);
        state.inflight = null;
        saveQueue();
      }
      break;
    default:
      break;
  }
}

async function refreshDriver() {
  try {
    state.driver = await session.api('GET', '/drivers/' + state.driver.id);
    renderDuty();
  } catch (e) { fail(e); }
}

// ---------------------------------------------------------------------------------------------
// The run: the next stop, and which order the delivery panel shows

let runLoading = false;
let runAgain = false;

/** Reads the run again (one request at a time; a change meanwhile reads it once more). */
async function refreshRun() {
  if (!state.driver) return;
  if (runLoading) { runAgain = true; return; }
  runLoading = true;
  try {
    state.run = await session.api('GET', '/drivers/' + state.driver.id + '/run');
    // Orders this page has not seen since it started (a reload shows the first one only).
    const missing = state.run.stops.map((s) => s.order_id).filter((id, i, all) => all.indexOf(id) === i && !state.orders.has(id));
    await Promise.all(missing.map((id) => session.api('GET', '/orders/' + id).then(remember).catch(() => {})));
    renderNextStop();
    followRun();
  } catch (e) {
    fail(e);
  } finally {
    runLoading = false;
  }
  if (runAgain) { runAgain = false; refreshRun(); }
}

/** Keeps `order` while it belongs to the run. */
function remember(order) {
  if (!order) return;
  if (FINISHED.includes(order.status)) state.orders.delete(order.id);
  else state.orders.set(order.id, order);
}

function renderNextStop() {
  const stops = runStops(state.run);
  const next = stops[0];
  $('next-stop').hidden = !next;
  if (!next) return;
  const orders = next.orders.map((id) => state.orders.get(id)).filter(Boolean);
  const numbers = orders.map((o) => o.order_number).join(', ');
  const first = orders[0];
  const kind = $('next-kind');
  kind.textContent = next.kind === 'pickup' ? 'Pickup' : 'Drop-off';
  kind.setAttribute('data-status', next.kind);
  if (next.kind === 'pickup') {
    $('next-what').textContent = 'Pick up ' + (numbers || 'the parcel') + ' at the pharmacy';
    $('next-where').textContent = first ? first.pickup_address : '';
  } else {
    $('next-what').textContent = 'Deliver ' + (numbers || 'the parcel') + (first ? ' to ' + first.customer_name : '');
    $('next-where').textContent = first ? first.delivery_address : '';
  }
  $('next-eta').textContent = 'ETA ' + stopEta(next);
  const window = stopWindow(next.window);
  $('next-window').textContent = window ? '· window ' + window : '';
  const left = stops.length;
  $('stops-left').textContent = left + (left === 1 ? ' stop' : ' stops') + ' left in your run';
}

/** Shows the order to act on: an assignment to answer, else the next stop's. */
function followRun() {
  const job = state.job;
  // A handover under way or a failed attempt to settle is never swapped away.
  if (job && (job.status === 'out_for_delivery' || job.status === 'failed')) return;
  const inRun = new Set(((state.run && state.run.stops) || []).map((s) => s.order_id));
  const offered = (o) => o && o.status === 'driver_assigned' && !o.driver_accepted_at;
  if (offered(job)) return;
  const offer = Array.from(state.orders.values()).find((o) => offered(o) && inRun.has(o.id));
  const first = state.run && state.run.stops[0];
  const next = offer || (first && state.orders.get(first.order_id));
  if (next && (!job || job.id !== next.id)) setJob(next);
}

// ---------------------------------------------------------------------------------------------
// The active delivery

const FINISHED = ['delivered', 'cancelled', 'rejected', 'returned', 'pending', 'accepted'];
let map = null;

function setJob(order) {
  if (order && FINISHED.includes(order.status)) {
    if (order.status === 'delivered') { say(order.order_number + ' delivered. Thank you!', 'ok'); loadEarnings(); }
    else if (order.status === 'cancelled') say(order.order_number + ' was cancelled.');
    else if (order.status === 'returned') say(order.order_number + ' is back at the pharmacy.');
    else if (order.status === 'accepted') say(order.order_number + ' went back to the pharmacy.');
    state.orders.delete(order.id);
    order = null;
  }
  remember(order);
  const fresh = !state.job || !order || state.job.id !== order.id;
  state.job = order;
  if (fresh) resetHandover();
  renderJob();
}

function renderJob() {
  const job = state.job;
  $('job').hidden = !job;
  $('waiting').hidden = !!job || !onDuty();
  if (!job) return;
  $('job-number').textContent = job.order_number;
  const status = $('job-status');
  status.textContent = STATUS_LABELS[job.status] || job.status;
  status.setAttribute('data-status', job.status);
  $('job-pickup').textContent = job.pickup_address;
  $('job-destination').textContent = job.delivery_address;
  $('job-recipient').textContent = job.customer_name + ' · ' + job.customer_phone;
  $('job-items').textContent = (job.items || []).map((i) => i.quantity + '× ' + i.name).join(', ');
  $('job-fee').textContent = money(job.delivery_fee) + (job.estimated_distance_km != null ? ' · ' + km(job.estimated_distance_km) : '');
  const needs = [job.require_proof_photo && 'photo', job.require_signature && 'signature', job.require_handover_code && 'handover code'].filter(Boolean);
  $('job-needs').textContent = needs.length ? needs.join(', ') : 'nothing special';
  const offered = job.status === 'driver_assigned' && !job.driver_accepted_at;
  $('offer').hidden = !offered;
  $('to-pickup').hidden = !(job.status === 'driver_assigned' && job.driver_accepted_at);
  $('to-road').hidden = job.status !== 'picked_up';
  $('handover').hidden = job.status !== 'out_for_delivery';
  $('after-failure').hidden = job.status !== 'failed';
  renderMap();
}

function renderMap() {
  const job = state.job;
  if (!job) return;
  if (!map) {
    map = new MapView($('job-map'), { tileUrl: app.getAttribute('data-tile-url') || '', idPrefix: 'job-' });
    const attribution = app.getAttribute('data-tile-attribution');
    if (attribution) { $('job-attribution').textContent = attribution; $('job-attribution').hidden = false; }
  }
  const markers = [
    { id: 'job-pickup-marker', kind: 'pickup', point: { latitude: job.pickup_latitude, longitude: job.pickup_longitude }, title: 'Pharmacy' },
    { id: 'job-destination-marker', kind: 'destination', point: { latitude: job.delivery_latitude, longitude: job.delivery_longitude }, title: 'Destination' }
  ];
  if (state.latest) markers.push({ id: 'job-me-marker', kind: 'driver', point: { latitude: state.latest.coords.latitude, longitude: state.latest.coords.longitude }, title: 'You' });
  map.draw({ markers, lines: [] });
}

const signature = { drawn: false, drawing: false };

function resetHandover() {
  $('photo').value = '';
  const preview = $('photo-preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.removeAttribute('src');
  preview.hidden = true;
  $('handover-code').value = '';
  $('fail-note').value = '';
  $('handover-error').hidden = true;
  clearSignature();
}

function clearSignature() {
  const canvas = $('signature');
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  signature.drawn = false;
}

function wireSignature() {
  const canvas = $('signature');
  const ctx = canvas.getContext('2d');
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height };
  };
  canvas.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    signature.drawing = true;
    const p = at(e);
    ctx.beginPath();
    ctx.moveTo(p.x, p.y);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!signature.drawing) return;
    const p = at(e);
    ctx.lineWidth = 4;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.strokeStyle = '#0b1f33';
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
    signature.drawn = true;
  });
  const end = () => { signature.drawing = false; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  $('signature-clear').addEventListener('click', clearSignature);
  clearSignature();
}

function wireJob() {
  wireSignature();
  replace($('fail-reason'), FAILURE_REASONS.map(([v, label]) => h('option', { value: v }, label)));
  const patch = (body) => session.api('PATCH', '/orders/' + state.job.id, { body }).then(setJob).then(refreshRun);
  const act = (id, work) => $(id).addEventListener('click', (e) => busy(e.currentTarget, work).catch(fail));
  act('accept', async () => {
    say(''); // the "New assignment" line is answered
    setJob(await session.api('POST', '/orders/' + state.job.id + '/assignment', { body: { action: 'accept' } }));
    refreshRun();
  });
  act('decline', async () => { $('decline-box').hidden = false; $('decline-reason').focus(); });
  act('decline-confirm', async () => {
    const reason = $('decline-reason').value.trim();
    const body = reason ? { action: 'decline', reason } : { action: 'decline' };
    await session.api('POST', '/orders/' + state.job.id + '/assignment', { body });
    $('decline-box').hidden = true;
    state.orders.delete(state.job.id);
    setJob(null);
    refreshDriver();
    refreshRun();
  });
  act('picked-up', () => patch({ status: 'picked_up' }));
  act('out-for-delivery', () => patch({ status: 'out_for_delivery' }));
  act('retry', () => patch({ status: 'out_for_delivery' }));
  act('failed', async () => {
    const reason = $('fail-reason').value;
    const note = $('fail-note').value.trim();
    if (reason === 'other' && !note) throw new Error('Describe what happened in the note.');
    await patch(note ? { status: 'failed', reason, note } : { status: 'failed', reason });
    say('Attempt recorded as failed.');
  });
  $('photo').addEventListener('change', () => {
    const file = $('photo').files[0];
    const preview = $('photo-preview');
    if (preview.src) URL.revokeObjectURL(preview.src);
    if (file) { preview.src = URL.createObjectURL(file); preview.hidden = false; } else { preview.hidden = true; }
  });
  $('handover').addEventListener('submit', (e) => {
    e.preventDefault();
    busy($('delivered'), deliver).catch((err) => {
      if (err instanceof SignedOut) return;
      const box = $('handover-error');
      box.textContent = err.message;
      box.hidden = false;
    });
  });
}

async function deliver() {
  const job = state.job;
  $('handover-error').hidden = true;
  const photo = $('photo').files[0];
  const code = $('handover-code').value.trim();
  if (job.require_proof_photo && !photo && !job.proof_photo_url) throw new Error('Take a photo of the delivery first.');
  if (job.require_signature && !signature.drawn && !job.signature_url) throw new Error('Ask the recipient to sign first.');
  if (job.require_handover_code && !/^[0-9]{6}$/.test(code)) throw new Error('Enter the six-digit code the recipient gives you.');
  if (photo) {
    const form = new FormData();
    form.append('order_id', job.id);
    form.append('file', photo, photo.name || 'photo.jpg');
    // Kept on the order: a second try (after a wrong code) does not upload it again.
    job.proof_photo_url = (await session.api('POST', '/uploads/proof', { form })).url;
    $('photo').value = '';
  }
  if (signature.drawn) {
    const blob = await new Promise((resolve) => $('signature').toBlob(resolve, 'image/png'));
    const form = new FormData();
    form.append('order_id', job.id);
    form.append('file', blob, 'signature.png');
    job.signature_url = (await session.api('POST', '/uploads/signature', { form })).url;
    signature.drawn = false;
  }
  const body = { status: 'delivered' };
  if (code) body.handover_code = code;
  try {
    setJob(await session.api('PATCH', '/orders/' + job.id, { body }));
    refreshRun();
  } catch (e) {
    if (e.code === 'handover_code_invalid') throw new Error('That code does not match. Ask the recipient again.');
    if (e.code === 'handover_locked') throw new Error('Too many wrong codes: record the attempt as failed (handover code did not match).');
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Earnings

async function loadEarnings() {
  try {
    const e = await session.api('GET', '/drivers/' + state.driver.id + '/earnings', { query: { tz: utcOffset() } });
    replace($('earnings'),
      h('p', { class: 'earnings-total' }, h('strong', { id: 'earnings-total' }, money(e.total_earnings)), ' from ', String(e.total_deliveries),
        ' deliver' + (e.total_deliveries === 1 ? 'y' : 'ies'), ' · ', km(e.total_distance_km)),
      e.days.length ? h('ul', { class: 'rows' }, e.days.map((d) => h('li', {}, h('span', {}, when(d.date + 'T12:00:00') ? new Date(d.date + 'T12:00:00').toLocaleDateString() : d.date),
        h('span', {}, String(d.deliveries), ' · ', money(d.earnings))))) : h('p', { class: 'muted small' }, 'No deliveries in these days yet.'));
  } catch (e) { fail(e); }
}

start().catch(fail);
