// The MedEx operator console, for pharmacies and admins. One page, its sections under #/…:
// orders (incoming with Accept / Reject, Assign driver, the live fleet map over
// /ws/vendor/{id}), an order's page (custody record and proofs), the daily report (chart and
// CSV), drivers, webhooks and API keys, and for admins users and the configuration. It speaks
// only the public HTTP and WebSocket API (session.js); the map is map.js.
import { MapView, redrawOnResize, validPoint } from './map.js';
import { Session, LiveSocket, SignedOut } from './session.js';
import {
  h, replace, field, badge, when, time, money, km, minutes, today, utcOffset, notice, download, busy,
  runStops, stopEta, stopWindow, STATUS_LABELS, DRIVER_STATUS_LABELS, RUN_STATUSES
} from './ui.js';

const $ = (id) => document.getElementById(id);
const session = new Session('console', ['vendor', 'admin']);
const shell = $('shell');
const tileUrl = shell.getAttribute('data-tile-url') || '';
const tileAttribution = shell.getAttribute('data-tile-attribution') || '';
const say = notice($('notice'));

const ACTIVE = ['pending', 'accepted', 'driver_assigned', 'picked_up', 'out_for_delivery', 'failed', 'returned'];
const VEHICLES = ['bike', 'scooter', 'car', 'van'];
const WEBHOOK_EVENTS = ['order.created', 'order.status_changed', 'order.driver_assigned', 'order.delivered', 'order.failed'];

const state = {
  me: null,          // GET /auth/me
  vendorId: null,    // the pharmacy shown
  vendor: null,
  vendors: [],       // for admins
  orders: new Map(), // id → order, the recent and the active ones
  drivers: new Map(),
  runDriverId: null, // the driver whose run the orders section shows
  socket: null
};

function isAdmin() { return state.me && state.me.role === 'admin'; }

function setConnection(s) {
  const labels = { idle: 'Signed out', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline', stopped: 'Not connected' };
  $('connection').setAttribute('data-state', s);
  $('connection-text').textContent = labels[s] || s;
}

function failed(error) {
  if (error instanceof SignedOut) return;
  say(error.message || String(error), 'error');
}

// ---------------------------------------------------------------------------------------------
// Dialogs: a modal form that answers its fields' values, or null when cancelled.

function ask(title, controls, okLabel, submit) {
  const dialog = $('dialog');
  const error = $('dialog-error');
  replace($('dialog-title'), title);
  replace($('dialog-body'), controls);
  $('dialog-ok').textContent = okLabel || 'OK';
  error.hidden = true;
  return new Promise((resolve) => {
    const form = $('dialog-form');
    const done = (value) => {
      form.onsubmit = null;
      $('dialog-cancel').onclick = null;
      dialog.oncancel = null;
      dialog.close();
      resolve(value);
    };
    form.onsubmit = async (e) => {
      e.preventDefault();
      try {
        const value = submit ? await submit() : true;
        done(value);
      } catch (err) {
        error.textContent = err.message || String(err);
        error.hidden = false;
      }
    };
    $('dialog-cancel').onclick = () => done(null);
    dialog.oncancel = () => done(null);
    dialog.showModal();
    const first = $('dialog-body').querySelector('input, select, textarea');
    if (first) first.focus();
  });
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

async function start() {
  session.onSignedOut(showLogin);
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', async () => { await session.logout(); });
  $('vendor-select').addEventListener('change', (e) => selectVendor(e.target.value));
  window.addEventListener('hashchange', route);
  let user = null;
  try { user = await session.resume(); } catch (e) { failed(e); }
  if (user) await enter(); else showLogin();
}

function showLogin() {
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.me = null;
  setConnection('idle');
  shell.hidden = true;
  $('account').hidden = true;
  $('login-screen').hidden = false;
  $('login-email').focus();
}

async function onLogin(e) {
  e.preventDefault();
  const error = $('login-error');
  error.hidden = true;
  const button = e.submitter || e.target.querySelector('button[type=submit]');
  try {
    await busy(button, () => session.login($('login-email').value.trim(), $('login-password').value));
    $('login-password').value = '';
    await enter();
  } catch (err) {
    error.textContent = err.status === 401 ? 'Wrong e-mail or password.' : err.message;
    error.hidden = false;
  }
}

async function enter() {
  state.me = await session.api('GET', '/auth/me');
  $('login-screen').hidden = true;
  shell.hidden = false;
  $('account').hidden = false;
  $('account-name').textContent = state.me.full_name || state.me.email;
  for (const el of document.querySelectorAll('[data-admin]')) el.hidden = !isAdmin();
  if (isAdmin()) {
    state.vendors = await session.api('GET', '/vendors', { query: { limit: 200 } });
    const select = $('vendor-select');
    replace(select, state.vendors.map((v) => h('option', { value: v.id }, v.business_name)));
    $('vendor-pick').hidden = state.vendors.length === 0;
    const kept = sessionStorage.getItem('medex.console.vendor');
    const chosen = state.vendors.find((v) => v.id === kept) || state.vendors[0];
    if (chosen) select.value = chosen.id;
    await selectVendor(chosen ? chosen.id : null);
  } else {
    await selectVendor(state.me.vendor_id);
  }
}

async function selectVendor(id) {
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.vendorId = id || null;
  state.vendor = null;
  state.orders.clear();
  state.drivers.clear();
  state.runDriverId = null;
  if (id) sessionStorage.setItem('medex.console.vendor', id);
  if (state.vendorId) {
    try {
      state.vendor = await session.api('GET', '/vendors/' + state.vendorId);
      const recent = await session.api('GET', '/vendors/' + state.vendorId + '/orders', { query: { limit: 50 } });
      for (const o of recent) state.orders.set(o.id, o);
    } catch (e) { failed(e); }
    state.socket = new LiveSocket(session, '/ws/vendor/' + encodeURIComponent(state.vendorId), {
      onMessage, onState: setConnection
    });
    state.socket.start();
  } else {
    setConnection('stopped');
  }
  route();
}

// ---------------------------------------------------------------------------------------------
// Live updates over /ws/vendor/{id}

function onMessage(m) {
  switch (m.type) {
    case 'initial_state':
      state.drivers.clear();
      for (const d of m.drivers || []) state.drivers.set(d.id, d);
      for (const o of m.active_orders || []) state.orders.set(o.id, o);
      // Orders that left the active set while the socket was down: fetch their outcome.
      for (const o of state.orders.values()) {
        if (ACTIVE.includes(o.status) && !(m.active_orders || []).some((a) => a.id === o.id)) refetchOrder(o.id);
      }
      changed('all');
      break;
    case 'driver_location': {
      const d = state.drivers.get(m.driver_id);
      if (!d) return;
      d.current_latitude = m.latitude;
      d.current_longitude = m.longitude;
      d.last_location_update = m.recorded_at;
      if (m.eta_minutes !== undefined) d.eta_minutes = m.eta_minutes;
      changed('location', m.driver_id);
      break;
    }
    case 'driver_status': {
      const d = state.drivers.get(m.driver_id);
      if (d) d.status = m.status; else refetchDrivers();
      changed('drivers', m.driver_id);
      break;
    }
    case 'order_created':
    case 'order_updated':
      state.orders.set(m.order.id, m.order);
      if (m.type === 'order_created') say('New order ' + m.order.order_number, 'ok');
      changed('orders', m.order.id);
      break;
    case 'order_status':
      state.orders.set(m.order.id, m.order);
      changed('orders', m.order.id);
      break;
    case 'late_risk':
      say(m.order_number + ' may miss its delivery window', 'error');
      break;
    case 'driver_arriving':
    case 'driver_arrived':
    case 'driver_departed': {
      const d = state.drivers.get(m.driver_id);
      const who = d && d.full_name ? d.full_name : 'The driver';
      const what = { driver_arriving: ' is arriving at ', driver_arrived: ' is at the door of ', driver_departed: ' has left ' }[m.type];
      say(who + what + m.order_number, 'ok');
      break;
    }
    default:
      break;
  }
}

async function refetchOrder(id) {
  try {
    state.orders.set(id, await session.api('GET', '/orders/' + id));
    changed('orders', id);
  } catch (e) { /* gone or not visible any more */ }
}

async function refetchDrivers() {
  try {
    const list = await session.api('GET', '/drivers', { query: driverQuery() });
    for (const d of list) state.drivers.set(d.id, Object.assign(state.drivers.get(d.id) || {}, d));
    changed('drivers');
  } catch (e) { failed(e); }
}

function driverQuery() {
  return isAdmin() ? { vendor_id: state.vendorId, limit: 200 } : { limit: 200 };
}

let current = null; // the section on screen: { name, update(kind, id) }

function changed(kind, id) {
  if (current && current.update) current.update(kind, id);
}

// ---------------------------------------------------------------------------------------------
// Routing

const VIEWS = {
  orders: ordersView,
  order: orderView,
  report: reportView,
  drivers: driversView,
  integrations: integrationsView,
  users: usersView,
  config: configView
};

function route() {
  if (!state.me) return;
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  let name = parts[0] || 'orders';
  let arg = parts[1] ? decodeURIComponent(parts[1]) : null;
  if (name === 'orders' && arg) name = 'order';
  if (!VIEWS[name] || ((name === 'users' || name === 'config') && !isAdmin())) name = 'orders';
  for (const a of document.querySelectorAll('#nav a')) {
    const here = a.getAttribute('data-view') === (name === 'order' ? 'orders' : name);
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  say('');
  const view = $('view');
  view.textContent = '';
  const needsVendor = !['users', 'config'].includes(name);
  if (needsVendor && !state.vendorId) {
    view.appendChild(h('section', { class: 'card' }, h('h1', {}, 'No pharmacy yet'),
      h('p', {}, 'Pharmacies register through the API (POST /api/vendors/register); they appear here once they have.')));
    current = null;
    return;
  }
  current = VIEWS[name](view, arg) || null;
}

function section(title, ...children) {
  const id = 'h-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

/** Gives each body cell its column's heading (`data-label`), shown beside it on a phone. */
function labelled(table) {
  const heads = Array.from(table.querySelectorAll('thead th')).map((th) => th.textContent);
  for (const tr of table.querySelectorAll('tbody tr')) {
    Array.from(tr.children).forEach((cell, i) => { if (heads[i]) cell.setAttribute('data-label', heads[i]); });
  }
  return table;
}

// ---------------------------------------------------------------------------------------------
// Orders: incoming, in progress, the fleet map, recent

function sortedOrders(filter) {
  return Array.from(state.orders.values()).filter(filter)
    .sort((a, b) => (b.created_at || '').localeCompare(a.created_at || ''));
}

/** The orders of `driverId`'s run with stops ahead, as far as this page knows them. */
function runOrders(driverId) {
  return Array.from(state.orders.values()).filter((o) => o.driver_id === driverId && RUN_STATUSES.includes(o.status));
}

/**
 * Drivers who can take another order: available ones, and busy ones whose run has room under
 * the pharmacy's `max_active_orders` (the server decides; this only offers them).
 */
function availableDrivers() {
  const room = (state.vendor && state.vendor.max_active_orders) || 1;
  return Array.from(state.drivers.values()).filter((d) => d.is_active !== false
    && (d.status === 'available' || (d.status === 'busy' && runOrders(d.id).length < room)));
}

function driverChoice(d) {
  const held = runOrders(d.id).length;
  const room = (state.vendor && state.vendor.max_active_orders) || 1;
  return d.full_name + ' (' + d.vehicle_type + (held ? ', ' + held + ' of ' + room + ' in run' : '') + ')';
}

/** The buttons an order's status allows the pharmacy (and an admin). */
function orderActions(order) {
  const act = (label, work, cls) => h('button', {
    type: 'button', class: cls || '', 'data-action': label,
    onclick: (e) => busy(e.currentTarget, work).catch(failed)
  }, label);
  const status = (next, reason) => session.api('PATCH', '/orders/' + order.id, { body: reason ? { status: next, reason } : { status: next } })
    .then((o) => { state.orders.set(o.id, o); changed('orders', o.id); });
  const cancel = () => act('Cancel', async () => {
    const reason = h('input', { type: 'text', maxlength: 500 });
    const ok = await ask('Cancel ' + order.order_number + '?', [field('Reason (optional)', reason)], 'Cancel order',
      () => status('cancelled', reason.value.trim() || undefined));
    if (ok) say(order.order_number + ' cancelled', 'ok');
  }, 'danger');
  const assign = (label) => {
    const drivers = availableDrivers();
    const select = h('select', { 'data-keep': 'driver-' + order.id, 'aria-label': 'Driver for ' + order.order_number },
      drivers.length ? drivers.map((d) => h('option', { value: d.id }, driverChoice(d)))
        : h('option', { value: '' }, 'No driver available'));
    return h('span', { class: 'assign' }, select, act(label, async () => {
      if (!select.value) throw new Error('No driver is available: ask one to go available in the driver app.');
      const o = await session.api('POST', '/orders/' + order.id + '/assign-driver', { body: { driver_id: select.value } });
      state.orders.set(o.id, o);
      changed('orders', o.id);
      say(order.order_number + ' assigned', 'ok');
    }, 'primary'));
  };
  switch (order.status) {
    case 'pending':
      return [
        act('Accept', () => status('accepted'), 'primary'),
        act('Reject', async () => {
          const reason = h('input', { type: 'text', maxlength: 500, required: true });
          await ask('Reject ' + order.order_number, [field('Reason', reason, 'Required; the customer sees that it was declined.')], 'Reject order', () => {
            if (!reason.value.trim()) throw new Error('Give a reason.');
            return status('rejected', reason.value.trim());
          });
        }, 'danger')
      ];
    case 'accepted': return [assign('Assign driver'), cancel()];
    case 'driver_assigned': return [assign('Reassign'), cancel()];
    case 'failed': return [act('Confirm return', () => status('returned'), 'primary')];
    case 'returned': return [act('New attempt', () => status('accepted'), 'primary'), cancel()];
    case 'picked_up':
    case 'out_for_delivery': return isAdmin() ? [cancel()] : [];
    default: return [];
  }
}

function driverName(id) {
  const d = id && state.drivers.get(id);
  return d ? d.full_name : '';
}

function orderRow(order) {
  const items = (order.items || []).map((i) => i.quantity + '× ' + i.name).join(', ');
  return h('li', { class: 'order', 'data-order-id': order.id, 'data-status': order.status },
    h('div', { class: 'order-head' },
      h('a', { href: '#/orders/' + order.id, class: 'order-number' }, order.order_number),
      badge(order.status),
      order.attempt > 1 ? h('span', { class: 'muted small' }, 'attempt ' + order.attempt) : null,
      h('span', { class: 'muted small' }, time(order.created_at))),
    h('div', { class: 'order-body' },
      h('span', {}, order.customer_name), ' · ', h('span', {}, order.delivery_address || 'address to confirm'),
      items ? h('div', { class: 'muted small' }, items) : null,
      order.driver_id ? h('div', { class: 'small' }, 'Driver: ', driverName(order.driver_id) || 'assigned') : null),
    h('div', { class: 'order-actions' }, orderActions(order)));
}

/** Re-renders `el` with `build()`, keeping the values and focus of controls marked data-keep. */
function keep(el, build) {
  const values = {};
  for (const c of el.querySelectorAll('[data-keep]')) values[c.getAttribute('data-keep')] = c.value;
  const focused = document.activeElement && el.contains(document.activeElement)
    ? (document.activeElement.getAttribute('data-keep') || document.activeElement.getAttribute('data-action')) : null;
  replace(el, build());
  for (const c of el.querySelectorAll('[data-keep]')) {
    const v = values[c.getAttribute('data-keep')];
    if (v !== undefined && Array.from(c.options || []).some((o) => o.value === v)) c.value = v;
  }
  if (focused) {
    const again = el.querySelector('[data-keep="' + focused + '"], [data-action="' + focused + '"]');
    if (again) again.focus();
  }
}

function ordersView(view) {
  const incoming = h('ul', { class: 'orders', id: 'incoming' });
  const active = h('ul', { class: 'orders', id: 'active' });
  const recent = h('ul', { class: 'orders', id: 'recent' });
  const fleet = h('ul', { class: 'fleet', id: 'fleet' });
  const mapSvg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  mapSvg.setAttribute('id', 'fleet-map');
  mapSvg.setAttribute('role', 'img');
  mapSvg.setAttribute('aria-label', 'Fleet map: the pharmacy, destinations of active orders and drivers');
  const empty = h('p', { class: 'map-empty', id: 'fleet-map-empty', hidden: true }, 'Drivers appear here once they share a location.');
  const wrap = h('div', { class: 'map-wrap', id: 'fleet-map-wrap' }, mapSvg, empty);
  const attribution = tileAttribution ? h('p', { class: 'muted small attribution' }, tileAttribution) : null;
  const run = runPanel(() => renderMap(), () => { renderFleet(); renderMap(); });
  view.appendChild(h('div', { class: 'dispatch' },
    h('div', { class: 'dispatch-lists' },
      run.element,
      section('Incoming orders', incoming),
      section('In progress', active),
      section('Recent', recent)),
    h('div', { class: 'dispatch-map' },
      h('section', { class: 'card map-card', 'aria-labelledby': 'h-fleet' },
        h('h2', { id: 'h-fleet' }, 'Fleet'),
        wrap,
        h('ul', { class: 'legend' },
          h('li', {}, h('span', { class: 'swatch pickup', 'aria-hidden': 'true' }), 'Pharmacy'),
          h('li', {}, h('span', { class: 'swatch destination', 'aria-hidden': 'true' }), 'Destination'),
          h('li', {}, h('span', { class: 'swatch driver', 'aria-hidden': 'true' }), 'Driver')),
        attribution,
        fleet))));
  const map = new MapView(mapSvg, { tileUrl, idPrefix: 'fleet-' });

  function renderLists() {
    const pending = sortedOrders((o) => o.status === 'pending');
    keep(incoming, () => pending.length ? pending.map(orderRow) : h('li', { class: 'empty muted' }, 'No incoming orders.'));
    const working = sortedOrders((o) => ACTIVE.includes(o.status) && o.status !== 'pending');
    keep(active, () => working.length ? working.map(orderRow) : h('li', { class: 'empty muted' }, 'Nothing in progress.'));
    const done = sortedOrders((o) => !ACTIVE.includes(o.status)).slice(0, 20);
    replace(recent, done.length ? done.map(orderRow) : h('li', { class: 'empty muted' }, 'No finished orders yet.'));
  }

  function renderFleet() {
    const drivers = Array.from(state.drivers.values()).sort((a, b) => a.full_name.localeCompare(b.full_name));
    keep(fleet, () => drivers.length ? drivers.map((d) => {
      const held = runOrders(d.id).length;
      const shown = state.runDriverId === d.id;
      // Only drivers holding orders have a run to show (or the one shown, to close it).
      const toggle = held || shown ? h('button', {
        type: 'button', class: 'small-button', 'data-action': 'run-' + d.id, 'aria-pressed': shown ? 'true' : 'false',
        'aria-label': (shown ? 'Hide run of ' : 'Show run of ') + d.full_name,
        onclick: () => run.show(shown ? null : d.id)
      }, shown ? 'Hide run' : 'Show run') : null;
      return h('li', { 'data-driver-id': d.id, class: shown ? 'selected' : null },
        h('span', { class: 'fleet-name' }, d.full_name), ' ', badge(d.status, DRIVER_STATUS_LABELS),
        held ? h('span', { class: 'small' }, ' ', held + ' order' + (held === 1 ? '' : 's')) : null,
        d.last_location_update ? h('span', { class: 'muted small' }, ' seen ', when(d.last_location_update)) : null,
        toggle ? [' ', toggle] : null);
    }) : h('li', { class: 'muted' }, 'No drivers yet: register one under Drivers.'));
  }

  function renderMap() {
    if (!wrap.isConnected) return; // another section is on screen
    const markers = [];
    const v = state.vendor;
    if (v && validPoint(v)) markers.push({ id: 'fleet-pickup', kind: 'pickup', point: v, title: v.business_name });
    const inRun = run.orderIds();
    for (const o of state.orders.values()) {
      if (!['accepted', 'driver_assigned', 'picked_up', 'out_for_delivery', 'failed'].includes(o.status)) continue;
      if (inRun.has(o.id)) continue; // drawn as a numbered stop instead
      const p = { latitude: o.delivery_latitude, longitude: o.delivery_longitude };
      markers.push({ id: 'destination-' + o.id, kind: 'destination', point: p, title: o.order_number + ': ' + (o.delivery_address || '') });
    }
    for (const d of state.drivers.values()) {
      if (d.status === 'offline') continue;
      const p = { latitude: d.current_latitude, longitude: d.current_longitude };
      markers.push({ id: 'driver-' + d.id, kind: 'driver', point: p, title: d.full_name + ' (' + (DRIVER_STATUS_LABELS[d.status] || d.status) + ')', label: d.full_name.split(' ')[0] });
    }
    markers.push(...run.markers());
    const line = run.line();
    empty.hidden = map.draw({ markers, lines: line ? [line] : [] });
  }

  renderLists();
  renderFleet();
  renderMap();
  redrawOnResize(wrap, renderMap);
  run.show(state.runDriverId);
  // Settings changed elsewhere (max_active_orders decides whom Assign driver offers).
  session.api('GET', '/vendors/' + state.vendorId).then((v) => { state.vendor = v; renderLists(); }).catch(failed);
  return {
    update(kind, id) {
      if (kind !== 'location') renderLists();
      if (kind === 'drivers' || kind === 'all' || kind === 'location' || kind === 'orders') renderFleet();
      run.update(kind, id);
      renderMap();
    }
  };
}

// ---------------------------------------------------------------------------------------------
// A driver's run: its stops in the order to drive them (GET /drivers/{id}/run), the drop-offs
// reordered by hand (drag and drop, or the up and down buttons) with PUT /drivers/{id}/run.

/** How long a shown run's ETAs may age while its driver moves before it is read again. */
const RUN_STALE_MS = 30_000;

/**
 * The run card of the orders section. `redraw()` draws the map again (the run's markers and
 * line come from `markers()` and `line()`); `shown()` tells the fleet list whose run is open.
 */
function runPanel(redraw, shown) {
  const title = h('h2', { id: 'h-run' }, 'Run');
  const totals = h('p', { class: 'run-totals', id: 'run-totals', 'aria-live': 'polite' });
  const error = h('p', { class: 'error', id: 'run-error', role: 'alert', hidden: true });
  const stops = h('ol', { class: 'stops', id: 'run-stops' });
  const close = h('button', { type: 'button', class: 'link', onclick: () => show(null) }, 'Close');
  const element = h('section', { class: 'card run', id: 'run', 'aria-labelledby': 'h-run', hidden: true },
    h('div', { class: 'run-head' }, title, close), totals, error, stops,
    h('p', { class: 'hint', id: 'run-hint' }, 'Drag a drop-off, or use its ↑ ↓ buttons, to fix the order by hand.'));
  let plan = null;      // the run as last answered
  let loadedAt = 0;
  let loading = null;   // the GET under way
  let again = false;    // another change arrived while it was
  let saving = false;   // a PUT under way: its answer is the run
  let dragged = null;   // the order id being dragged

  function driver() { return state.drivers.get(state.runDriverId); }

  function show(driverId) {
    state.runDriverId = driverId || null;
    plan = null;
    error.hidden = true;
    element.hidden = !driverId;
    if (driverId) {
      const d = driver();
      replace(title, 'Run of ', d ? d.full_name : 'driver');
      replace(stops, h('li', { class: 'muted' }, 'Loading…'));
      replace(totals, '');
      load();
    }
    shown();
  }

  async function load() {
    const id = state.runDriverId;
    if (!id) return;
    if (loading || saving) { again = true; return; }
    loading = session.api('GET', '/drivers/' + encodeURIComponent(id) + '/run');
    try {
      const answer = await loading;
      if (state.runDriverId === id && !saving) { plan = answer; loadedAt = Date.now(); render(); }
    } catch (e) {
      if (state.runDriverId === id) { error.textContent = e.message; error.hidden = false; }
    } finally {
      loading = null;
    }
    if (again) { again = false; load(); }
  }

  const asked = new Set(); // orders of the run this page did not know, fetched once
  function number(id) {
    const o = state.orders.get(id);
    if (!o && !asked.has(id)) { asked.add(id); refetchOrder(id); }
    return o ? o.order_number : id.slice(0, 8);
  }

  function dropoffIds(run) {
    return run.stops.filter((s) => s.kind === 'dropoff').map((s) => s.order_id);
  }

  function render() {
    if (!plan) return;
    const d = driver();
    replace(title, 'Run of ', d ? d.full_name : 'driver');
    const list = runStops(plan);
    const drops = dropoffIds(plan);
    replace(totals, list.length
      ? [String(list.length), list.length === 1 ? ' stop · ' : ' stops · ', km(plan.total_km), ' · ', minutes(plan.total_minutes),
        plan.manual ? h('span', { class: 'muted' }, ' · order fixed by hand') : null]
      : 'No stops ahead.');
    const focused = document.activeElement && stops.contains(document.activeElement) ? document.activeElement.getAttribute('data-action') : null;
    replace(stops, list.map((stop, i) => stop.kind === 'pickup' ? pickupRow(stop, i) : dropoffRow(stop, i, drops)));
    if (focused) {
      // A move button that now stands at the end is disabled: its neighbour takes the focus.
      let target = stops.querySelector('[data-action="' + focused + '"]');
      if (target && target.disabled) target = target.parentNode.querySelector('button:not([disabled])');
      if (target) target.focus();
    }
    redraw();
  }

  function pickupRow(stop, i) {
    const pharmacy = state.vendor ? state.vendor.business_name : 'the pharmacy';
    return h('li', { class: 'stop', 'data-kind': 'pickup', 'data-order-ids': stop.orders.join(' ') },
      h('span', { class: 'stop-index', 'aria-hidden': 'true' }, String(i + 1)),
      h('div', { class: 'stop-what' },
        h('strong', {}, 'Pick up'), ' at ', pharmacy,
        h('div', { class: 'muted small' }, stop.orders.map(number).join(', '))),
      h('div', { class: 'stop-when' }, h('span', { class: 'stop-eta' }, stopEta(stop))));
  }

  function dropoffRow(stop, i, drops) {
    const o = state.orders.get(stop.order_id);
    const name = number(stop.order_id);
    const at = drops.indexOf(stop.order_id);
    const window = stopWindow(stop.window);
    const move = (by, label, glyph) => h('button', {
      type: 'button', class: 'small-button', 'data-action': (by < 0 ? 'up-' : 'down-') + stop.order_id,
      'aria-label': label + ' ' + name, title: label, disabled: at + by < 0 || at + by >= drops.length,
      onclick: () => arrange(moved(drops, at, at + by))
    }, glyph);
    const li = h('li', {
      class: 'stop' + (stop.late ? ' late' : ''), 'data-kind': 'dropoff', 'data-order-id': stop.order_id, draggable: 'true',
      ondragstart: (e) => {
        dragged = stop.order_id;
        e.dataTransfer.effectAllowed = 'move';
        e.dataTransfer.setData('text/plain', stop.order_id);
        li.classList.add('dragging');
      },
      ondragend: () => { dragged = null; li.classList.remove('dragging'); clearMarks(); },
      ondragover: (e) => {
        if (!dragged || dragged === stop.order_id) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'move';
        clearMarks();
        li.classList.add(below(e, li) ? 'drop-after' : 'drop-before');
      },
      ondragleave: () => li.classList.remove('drop-before', 'drop-after'),
      ondrop: (e) => {
        e.preventDefault();
        const from = drops.indexOf(dragged || e.dataTransfer.getData('text/plain'));
        clearMarks();
        if (from < 0 || from === at) return;
        let to = below(e, li) ? at + 1 : at;
        if (from < to) to -= 1;
        arrange(moved(drops, from, to));
      }
    },
    h('span', { class: 'stop-index', 'aria-hidden': 'true' }, String(i + 1)),
    h('div', { class: 'stop-what' },
      h('strong', {}, 'Drop off'), ' ', h('span', { class: 'order-number' }, name),
      o ? h('div', { class: 'small' }, o.customer_name, ' · ', o.delivery_address || 'address to confirm') : null),
    h('div', { class: 'stop-when' },
      h('span', { class: 'stop-eta' }, stopEta(stop)),
      window ? h('span', { class: 'stop-window small' }, 'window ', window) : null,
      stop.late ? h('span', { class: 'badge', 'data-status': 'failed' }, 'late risk') : null),
    h('div', { class: 'stop-move' }, move(-1, 'Move up', '↑'), move(1, 'Move down', '↓')));
    return li;
  }

  function below(e, li) {
    const box = li.getBoundingClientRect();
    return e.clientY > box.top + box.height / 2;
  }

  function clearMarks() {
    for (const el of stops.querySelectorAll('.drop-before, .drop-after')) el.classList.remove('drop-before', 'drop-after');
  }

  function moved(ids, from, to) {
    const next = ids.slice();
    const [id] = next.splice(from, 1);
    next.splice(to, 0, id);
    return next;
  }

  /** Sends the drop-off order; shows it at once, then the run as answered, or the old one again. */
  async function arrange(orderIds) {
    if (saving) return; // one change at a time: the next starts from its answer
    const id = state.runDriverId;
    const before = plan;
    error.hidden = true;
    saving = true;
    plan = tentative(before, orderIds);
    render();
    stops.setAttribute('aria-busy', 'true');
    try {
      const answer = await session.api('PUT', '/drivers/' + encodeURIComponent(id) + '/run', { body: { order_ids: orderIds } });
      if (state.runDriverId === id) { plan = answer; loadedAt = Date.now(); }
    } catch (e) {
      if (state.runDriverId === id) {
        plan = before;
        if (!(e instanceof SignedOut)) { error.textContent = 'The order was not changed: ' + e.message; error.hidden = false; }
      }
    } finally {
      saving = false;
      stops.removeAttribute('aria-busy');
    }
    if (state.runDriverId === id) render();
    if (again) { again = false; load(); }
  }

  /** `run` with its drop-offs in `orderIds` order, in the places drop-offs had. */
  function tentative(run, orderIds) {
    const byId = new Map(run.stops.filter((s) => s.kind === 'dropoff').map((s) => [s.order_id, s]));
    const queue = orderIds.map((o) => byId.get(o));
    return { ...run, stops: run.stops.map((s) => (s.kind === 'dropoff' ? queue.shift() : s)) };
  }

  return {
    element,
    show,
    /** The orders of the shown run, drawn as its stops. */
    orderIds() { return new Set(plan ? plan.stops.map((s) => s.order_id) : []); },
    markers() {
      if (!plan) return [];
      return runStops(plan).map((stop, i) => ({
        id: 'run-stop-' + (i + 1), kind: 'stop', number: i + 1,
        point: { latitude: stop.latitude, longitude: stop.longitude },
        title: (i + 1) + '. ' + (stop.kind === 'pickup' ? 'Pick up ' : 'Drop off ') + stop.orders.map(number).join(', ') + ', ETA ' + when(stop.eta)
      }));
    },
    /** From the driver, through the stops in order. */
    line() {
      if (!plan || !plan.stops.length) return null;
      const d = driver();
      const from = d && Number.isFinite(d.current_latitude) ? [{ latitude: d.current_latitude, longitude: d.current_longitude }] : [];
      return { id: 'run-line', class: 'run-line', points: from.concat(runStops(plan)) };
    },
    update(kind, id) {
      const driverId = state.runDriverId;
      if (!driverId) return;
      if (kind === 'all') load();
      else if (kind === 'drivers' && id === driverId) load();
      else if (kind === 'orders') {
        const o = state.orders.get(id);
        // An order joining, leaving or moving on in this run (its driver_id may be gone already).
        if ((o && o.driver_id === driverId) || this.orderIds().has(id)) load();
        else if (plan) render(); // an order number may have arrived
      } else if (kind === 'location' && id === driverId && Date.now() - loadedAt > RUN_STALE_MS) load();
    }
  };
}

// ---------------------------------------------------------------------------------------------
// One order: details, actions, the custody record, proofs

function orderView(view, id) {
  const body = h('div', { class: 'order-page' }, h('p', { class: 'muted' }, 'Loading…'));
  view.appendChild(h('p', {}, h('a', { href: '#/orders' }, '← Orders')));
  view.appendChild(body);
  let order = null;
  let custody = null;
  const proofUrls = new Map();

  async function load() {
    try {
      [order, custody] = await Promise.all([
        session.api('GET', '/orders/' + id),
        session.api('GET', '/orders/' + id + '/custody')
      ]);
      state.orders.set(order.id, order);
      render();
    } catch (e) {
      replace(body, h('p', { class: 'error' }, e.status === 404 ? 'No such order.' : e.message));
    }
  }

  function fact(label, value) { return [h('dt', {}, label), h('dd', {}, value === null || value === undefined || value === '' ? '–' : value)]; }

  function render() {
    const requirements = [order.require_proof_photo && 'photo', order.require_signature && 'signature', order.require_handover_code && 'handover code'].filter(Boolean);
    replace(body,
      h('section', { class: 'card', 'aria-labelledby': 'order-title' },
        h('h1', { id: 'order-title' }, order.order_number, ' ', badge(order.status)),
        h('dl', { class: 'facts-list' },
          fact('Customer', order.customer_name + ' · ' + order.customer_phone),
          fact('Deliver to', order.delivery_address),
          fact('Items', (order.items || []).map((i) => i.quantity + '× ' + i.name + (i.notes ? ' (' + i.notes + ')' : '')).join(', ')),
          fact('Notes', order.notes),
          fact('Driver', driverName(order.driver_id) || (order.driver_id ? 'assigned' : '')),
          fact('Attempt', String(order.attempt || 1) + (order.failure_reason ? ' (last failed: ' + order.failure_reason.replace(/_/g, ' ') + ')' : '')),
          fact('Fee', money(order.delivery_fee)),
          fact('Distance', order.actual_distance_km != null ? km(order.actual_distance_km) + ' driven' : km(order.estimated_distance_km) + ' estimated'),
          fact('Proof required', requirements.join(', ') || 'none'),
          fact('Tracking link', h('a', { href: '/track/' + encodeURIComponent(order.tracking_token), rel: 'noreferrer' }, 'Open the customer\'s tracking page'))),
        h('div', { class: 'order-actions' }, orderActions(order))),
      section('Proofs', proofList()),
      section('Custody record', custodyRecord()));
  }

  function proofList() {
    const proofs = order.proofs || [];
    if (!proofs.length) return h('p', { class: 'muted' }, 'No proof uploaded yet.');
    return h('ul', { class: 'proofs' }, proofs.map((p) => {
      const img = h('img', { alt: (p.kind === 'signature' ? 'Signature' : 'Proof photo') + ' uploaded ' + when(p.uploaded_at), class: 'proof' });
      showProof(p.url, img);
      return h('li', { 'data-kind': p.kind }, h('figure', {}, img,
        h('figcaption', {}, h('strong', {}, p.kind === 'signature' ? 'Signature' : 'Photo'), ' ', time(p.uploaded_at),
          h('br'), h('code', { class: 'hash', title: 'SHA-256' }, p.sha256))));
    }));
  }

  // Uploads need the session's token, which an <img src> cannot send: fetch, then show from memory.
  async function showProof(url, img) {
    try {
      let blobUrl = proofUrls.get(url);
      if (!blobUrl) {
        const response = await session.api('GET', url.replace(/^\/api/, ''), { raw: true, accept: 'image/*' });
        blobUrl = URL.createObjectURL(await response.blob());
        proofUrls.set(url, blobUrl);
      }
      img.src = blobUrl;
    } catch (e) { img.alt = 'Proof could not be loaded: ' + e.message; }
  }

  function custodyRecord() {
    const entries = custody.entries || [];
    const verdict = custody.verified
      ? h('p', { class: 'verified', id: 'custody-verified' }, '✓ Verified: every entry\'s hash links to the one before, signed by key ', h('code', {}, custody.key_id || '–'))
      : h('p', { class: 'error', id: 'custody-verified' }, '✗ The record does not verify.');
    return [verdict, h('ol', { class: 'timeline custody', id: 'custody' }, entries.map((e) => h('li', { class: 'step done', 'data-step': e.status },
      h('div', { class: 'step-label' },
        h('strong', {}, STATUS_LABELS[e.status] || e.status), ' by ', e.actor_role,
        e.reason ? h('span', {}, ' — ', e.reason.replace(/_/g, ' ')) : null,
        e.note ? h('span', { class: 'muted' }, ' “', e.note, '”') : null,
        // Decimal strings, as hashed.
        e.location ? h('div', { class: 'muted small' }, 'at ', String(e.location.latitude), ', ', String(e.location.longitude)) : null,
        (e.proof_sha256 || []).length ? h('div', { class: 'muted small' }, 'proofs ', e.proof_sha256.map((s) => s.slice(0, 12)).join(', ')) : null,
        h('div', { class: 'muted small' }, h('code', { class: 'hash', title: e.hash }, e.hash.slice(0, 16)))),
      h('span', { class: 'step-time' }, time(e.at)))))];
  }

  load();
  return {
    update(kind, changedId) {
      if (kind === 'orders' && changedId === id) load();
      else if (kind === 'all') load();
    }
  };
}

// ---------------------------------------------------------------------------------------------
// The daily report: figures, a chart of the week, per driver, CSV

function reportView(view) {
  const date = h('input', { type: 'date', value: today(), max: today(), required: true });
  const show = h('button', { type: 'submit', class: 'primary' }, 'Show');
  const csv = h('button', { type: 'button', id: 'download-csv' }, 'Download CSV');
  const out = h('div', { id: 'report' });
  const form = h('form', { class: 'inline-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); busy(show, load).catch(failed); } },
    field('Day', date), show, csv);
  view.appendChild(section('Daily report', form, out));
  const tz = utcOffset();

  csv.addEventListener('click', () => busy(csv, async () => {
    const response = await session.api('GET', '/reports/vendors/' + state.vendorId, { query: { date: date.value, tz, format: 'csv' }, raw: true, accept: 'text/csv' });
    const disposition = response.headers.get('content-disposition') || '';
    const name = (/filename="?([^";]+)"?/.exec(disposition) || [])[1] || 'report-' + date.value + '.csv';
    download(await response.blob(), name);
    say('Downloaded ' + name, 'ok');
  }).catch(failed));

  async function load() {
    const day = date.value || today();
    const week = [];
    for (let i = 6; i >= 0; i--) {
      const d = new Date(day + 'T12:00:00');
      d.setDate(d.getDate() - i);
      week.push(d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0'));
    }
    const reports = await Promise.all(week.map((d) => session.api('GET', '/reports/vendors/' + state.vendorId, { query: { date: d, tz } })));
    const r = reports[reports.length - 1];
    const figures = [
      ['Orders created', r.orders_created], ['Delivered', r.orders_delivered], ['Cancelled', r.orders_cancelled],
      ['Rejected', r.orders_rejected], ['Failed attempts', r.failed_attempts], ['Returns', r.returns], ['Revenue', money(r.revenue)]
    ];
    replace(out,
      h('dl', { class: 'figures', id: 'report-figures' }, figures.map(([k, v]) => h('div', { class: 'figure' }, h('dt', {}, k), h('dd', {}, String(v))))),
      h('h3', {}, 'The week to ', r.date),
      chart(reports),
      h('h3', {}, 'Drivers on ', r.date),
      r.drivers.length ? labelled(h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Driver', 'Deliveries', 'Distance', 'Earnings', 'Avg. minutes', 'Failed', 'Returns'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, r.drivers.map((d) => h('tr', {},
          h('th', { scope: 'row' }, d.driver_name), h('td', {}, String(d.deliveries)), h('td', {}, km(d.distance_km)),
          h('td', {}, money(d.earnings)), h('td', {}, d.average_delivery_minutes != null ? d.average_delivery_minutes.toFixed(0) : '–'),
          h('td', {}, String(d.failed_attempts)), h('td', {}, String(d.returns)))))))
        : h('p', { class: 'muted' }, 'No deliveries that day.'));
  }

  load().catch(failed);
  return null;
}

/** Bars of orders created and delivered per day, in SVG, with the numbers as text too. */
function chart(reports) {
  const NS = 'http://www.w3.org/2000/svg';
  const s = (name, attrs, parent) => {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  };
  const width = 560, height = 200, left = 28, bottom = 28, top = 12;
  const max = Math.max(1, ...reports.map((r) => Math.max(r.orders_created, r.orders_delivered)));
  const svgEl = s('svg', { viewBox: '0 0 ' + width + ' ' + height, class: 'chart', id: 'report-chart', role: 'img' });
  const desc = reports.map((r) => r.date + ': ' + r.orders_created + ' created, ' + r.orders_delivered + ' delivered').join('; ');
  s('title', {}, svgEl).textContent = 'Orders created and delivered per day. ' + desc;
  const band = (width - left) / reports.length;
  const barW = Math.min(22, band / 3);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  s('line', { x1: left, x2: width, y1: y(0), y2: y(0), class: 'axis' }, svgEl);
  s('text', { x: left - 6, y: y(max) + 4, class: 'chart-label', 'text-anchor': 'end' }, svgEl).textContent = String(max);
  reports.forEach((r, i) => {
    const x = left + i * band + band / 2;
    for (const [value, cls, dx] of [[r.orders_created, 'bar-created', -barW - 1], [r.orders_delivered, 'bar-delivered', 1]]) {
      const bar = s('rect', { x: x + dx, y: y(value), width: barW, height: Math.max(0, y(0) - y(value)), class: cls, 'data-value': value }, svgEl);
      s('title', {}, bar).textContent = r.date + ': ' + value + (cls === 'bar-created' ? ' created' : ' delivered');
    }
    s('text', { x, y: height - 10, class: 'chart-label', 'text-anchor': 'middle' }, svgEl).textContent = r.date.slice(5);
  });
  return h('figure', { class: 'chart-figure' }, svgEl,
    h('figcaption', { class: 'legend' },
      h('span', {}, h('span', { class: 'swatch created', 'aria-hidden': 'true' }), 'Created'),
      h('span', {}, h('span', { class: 'swatch delivered', 'aria-hidden': 'true' }), 'Delivered')));
}

// ---------------------------------------------------------------------------------------------
// Drivers: the fleet, their status, registering one

function driversView(view) {
  const list = h('div', { id: 'drivers' });
  const name = h('input', { type: 'text', required: true, maxlength: 200, autocomplete: 'off' });
  const email = h('input', { type: 'email', required: true, autocomplete: 'off' });
  const password = h('input', { type: 'password', required: true, minlength: 8, maxlength: 128, autocomplete: 'new-password' });
  const phone = h('input', { type: 'tel', maxlength: 40 });
  const vehicle = h('select', {}, VEHICLES.map((v) => h('option', { value: v }, v)));
  const plate = h('input', { type: 'text', maxlength: 40 });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Register driver');
  const form = h('form', { class: 'grid-form', id: 'register-driver', novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    busy(submit, async () => {
      const body = { full_name: name.value.trim(), email: email.value.trim(), password: password.value, vehicle_type: vehicle.value };
      if (phone.value.trim()) body.phone = phone.value.trim();
      if (plate.value.trim()) body.vehicle_number = plate.value.trim();
      if (isAdmin()) body.vendor_id = state.vendorId;
      await session.api('POST', '/drivers/register', { body });
      say('Registered ' + body.full_name + '. They sign in at /driver.', 'ok');
      form.reset();
      await load();
    }).catch(failed);
  } },
  field('Full name', name), field('E-mail', email), field('Password', password, 'At least 8 characters; give it to the driver.'),
  field('Phone', phone), field('Vehicle', vehicle), field('Vehicle number', plate), h('div', { class: 'form-end' }, submit));
  view.appendChild(section('Drivers', list));
  view.appendChild(section('Register a driver', form));

  async function load() {
    const drivers = await session.api('GET', '/drivers', { query: driverQuery() });
    for (const d of drivers) state.drivers.set(d.id, Object.assign(state.drivers.get(d.id) || {}, d));
    render();
  }

  function render() {
    const drivers = Array.from(state.drivers.values()).sort((a, b) => a.full_name.localeCompare(b.full_name));
    keep(list, () => drivers.length ? labelled(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Driver', 'Vehicle', 'Status', 'Deliveries', 'Earnings', 'Set status'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, drivers.map((d) => {
        const select = h('select', { 'data-keep': 'status-' + d.id, 'aria-label': 'Status of ' + d.full_name },
          ['available', 'offline', 'on_break'].map((s) => h('option', { value: s }, DRIVER_STATUS_LABELS[s])));
        select.value = d.status === 'busy' ? 'available' : d.status;
        const set = h('button', { type: 'button', 'data-action': 'set-' + d.id, disabled: d.status === 'busy', onclick: (e) => busy(e.currentTarget, async () => {
          const updated = await session.api('PATCH', '/drivers/' + d.id + '/status', { body: { status: select.value } });
          state.drivers.set(d.id, Object.assign(state.drivers.get(d.id) || {}, updated));
          render();
          say(d.full_name + ' is ' + DRIVER_STATUS_LABELS[updated.status].toLowerCase(), 'ok');
        }).catch(failed) }, 'Set');
        return h('tr', { 'data-driver-id': d.id },
          h('th', { scope: 'row' }, d.full_name, h('div', { class: 'muted small' }, d.email)),
          h('td', {}, d.vehicle_type, d.vehicle_number ? ' · ' + d.vehicle_number : ''),
          h('td', {}, badge(d.status, DRIVER_STATUS_LABELS)),
          h('td', {}, String(d.total_deliveries || 0)),
          h('td', {}, money(d.total_earnings)),
          h('td', { class: 'nowrap' }, select, ' ', set));
      })))) : h('p', { class: 'muted' }, 'No drivers yet.'));
  }

  load().catch(failed);
  return { update(kind) { if (kind === 'drivers' || kind === 'all') render(); } };
}

// ---------------------------------------------------------------------------------------------
// Webhooks and API keys

function integrationsView(view) {
  const base = '/vendors/' + state.vendorId;
  const hooks = h('div', { id: 'webhooks' });
  const keys = h('div', { id: 'api-keys' });
  const url = h('input', { type: 'url', required: true, placeholder: 'https://shop.example/medex-events' });
  const events = WEBHOOK_EVENTS.map((ev) => h('input', { type: 'checkbox', value: ev, checked: true }));
  const addHook = h('button', { type: 'submit', class: 'primary' }, 'Add webhook');
  const hookForm = h('form', { class: 'grid-form', novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    busy(addHook, async () => {
      const chosen = events.filter((c) => c.checked).map((c) => c.value);
      const created = await session.api('POST', base + '/webhooks', { body: { url: url.value.trim(), events: chosen.length === WEBHOOK_EVENTS.length ? ['*'] : chosen } });
      await secretOnce('Webhook secret', created.secret, 'Signs X-MedEx-Signature. Shown only now: store it in the receiving system.');
      hookForm.reset();
      await loadHooks();
    }).catch(failed);
  } },
  field('Endpoint URL', url),
  h('fieldset', { class: 'checks' }, h('legend', {}, 'Events'), events.map((c, i) => h('label', { class: 'check' }, c, ' ', WEBHOOK_EVENTS[i]))),
  h('div', { class: 'form-end' }, addHook));
  const keyName = h('input', { type: 'text', required: true, maxlength: 100, placeholder: 'Shop backend' });
  const addKey = h('button', { type: 'submit', class: 'primary' }, 'Create API key');
  const keyForm = h('form', { class: 'inline-form', novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    busy(addKey, async () => {
      const created = await session.api('POST', base + '/api-keys', { body: { name: keyName.value.trim() } });
      await secretOnce('API key ' + created.name, created.key, 'Use as Authorization: Bearer <key>. Shown only now.');
      keyForm.reset();
      await loadKeys();
    }).catch(failed);
  } }, field('Key name', keyName), addKey);
  view.appendChild(section('Webhooks', hooks, h('h3', {}, 'Add a webhook'), hookForm));
  view.appendChild(section('API keys', keys, h('h3', {}, 'Create a key'), keyForm));

  async function secretOnce(title, secret, why) {
    const out = h('input', { type: 'text', readonly: true, value: secret, class: 'secret', id: 'secret-once' });
    await ask(title, [field('Copy it now', out, why)], 'Done');
  }

  async function loadHooks() {
    const list = await session.api('GET', base + '/webhooks');
    replace(hooks, list.length ? h('ul', { class: 'rows' }, list.map((w) => {
      const log = h('div', { class: 'deliveries' });
      return h('li', { 'data-webhook-id': w.id },
        h('div', {}, h('code', {}, w.url), h('div', { class: 'muted small' }, w.events.join(', '), ' · since ', when(w.created_at))),
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', onclick: (e) => busy(e.currentTarget, async () => {
            const attempts = await session.api('GET', base + '/webhooks/' + w.id + '/deliveries');
            replace(log, attempts.length ? h('table', { class: 'table' }, h('tbody', {}, attempts.slice(0, 20).map((a) => h('tr', {},
              h('td', {}, when(a.created_at || a.attempted_at)), h('td', {}, a.event_type || a.type || ''), h('td', {}, a.outcome || a.status || ''),
              h('td', {}, a.response_status != null ? String(a.response_status) : ''))))) : h('p', { class: 'muted small' }, 'No deliveries yet.'));
          }).catch(failed) }, 'Deliveries'),
          h('button', { type: 'button', class: 'danger', onclick: (e) => busy(e.currentTarget, async () => {
            await session.api('DELETE', base + '/webhooks/' + w.id);
            await loadHooks();
          }).catch(failed) }, 'Remove')),
        log);
    })) : h('p', { class: 'muted' }, 'No webhooks.'));
  }

  async function loadKeys() {
    const list = await session.api('GET', base + '/api-keys');
    replace(keys, list.length ? h('ul', { class: 'rows' }, list.map((k) => h('li', { 'data-key-id': k.id },
      h('div', {}, h('strong', {}, k.name), ' ', h('code', {}, k.prefix + '…'),
        h('div', { class: 'muted small' }, 'created ', when(k.created_at), ' · last used ', k.last_used_at ? when(k.last_used_at) : 'never')),
      h('div', { class: 'row-actions' }, h('button', { type: 'button', class: 'danger', onclick: (e) => busy(e.currentTarget, async () => {
        await session.api('DELETE', base + '/api-keys/' + k.id);
        await loadKeys();
      }).catch(failed) }, 'Revoke ' + k.name))))) : h('p', { class: 'muted' }, 'No API keys.'));
  }

  loadHooks().catch(failed);
  loadKeys().catch(failed);
  return null;
}

// ---------------------------------------------------------------------------------------------
// Admin: users and the configuration

function usersView(view) {
  const role = h('select', {}, h('option', { value: '' }, 'All'), ['user', 'vendor', 'driver', 'admin'].map((r) => h('option', { value: r }, r)));
  const list = h('div', { id: 'users' });
  role.addEventListener('change', () => load().catch(failed));
  view.appendChild(section('Users', h('div', { class: 'inline-form' }, field('Role', role)), list));

  async function load() {
    const users = await session.api('GET', '/admin/users', { query: { role: role.value, limit: 200 } });
    replace(list, labelled(h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Name', 'E-mail', 'Role', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, users.map((u) => h('tr', { 'data-user-id': u.id, 'data-email': u.email },
        h('th', { scope: 'row' }, u.full_name), h('td', {}, u.email), h('td', {}, u.role),
        h('td', {}, u.is_active ? 'Active' : 'Deactivated'),
        h('td', {}, u.id === state.me.id ? h('span', { class: 'muted small' }, 'you') : h('button', {
          type: 'button', class: u.is_active ? 'danger' : '',
          onclick: (e) => busy(e.currentTarget, async () => {
            if (u.is_active) {
              const ok = await ask('Deactivate ' + u.email + '?', [h('p', {}, 'Their sessions stop working at once.')], 'Deactivate');
              if (!ok) return;
            }
            await session.api('PATCH', '/admin/users/' + u.id, { body: { is_active: !u.is_active } });
            say(u.email + (u.is_active ? ' deactivated' : ' reactivated'), 'ok');
            await load();
          }).catch(failed),
          'aria-label': (u.is_active ? 'Deactivate ' : 'Reactivate ') + u.email
        }, u.is_active ? 'Deactivate' : 'Reactivate'))))))));
  }

  load().catch(failed);
  return null;
}

function configView(view) {
  const out = h('div', { id: 'config' });
  view.appendChild(section('Configuration', h('p', { class: 'muted' }, 'In force on every instance; changes apply at once.'), out));
  const label = (key) => key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

  async function load() {
    const config = await session.api('GET', '/admin/config');
    const controls = [];
    const fields = (obj, path) => Object.entries(obj).map(([k, v]) => {
      const here = path.concat(k);
      if (v && typeof v === 'object') return h('fieldset', {}, h('legend', {}, label(k)), fields(v, here));
      const input = typeof v === 'boolean'
        ? h('input', { type: 'checkbox', checked: v })
        : h('input', { type: 'number', step: 'any', value: String(v), required: true });
      controls.push({ path: here, input, before: v });
      return typeof v === 'boolean'
        ? h('div', { class: 'field check' }, h('label', {}, input, ' ', label(k)))
        : field(label(k), input);
    });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save configuration');
    const form = h('form', { class: 'grid-form', novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      busy(save, async () => {
        const patch = {};
        for (const c of controls) {
          const value = c.input.type === 'checkbox' ? c.input.checked : Number(c.input.value);
          if (value === c.before) continue;
          let at = patch;
          for (const k of c.path.slice(0, -1)) at = at[k] = at[k] || {};
          at[c.path[c.path.length - 1]] = value;
        }
        if (!Object.keys(patch).length) { say('Nothing changed.'); return; }
        await session.api('PATCH', '/admin/config', { body: patch });
        say('Configuration saved.', 'ok');
        await load();
      }).catch(failed);
    } }, fields(config, []), h('div', { class: 'form-end' }, save));
    replace(out, form);
  }

  load().catch(failed);
  return null;
}

start().catch(failed);
