// MedEx public tracking page.
//
// Reads the tracking token from its own URL, fetches the public tracking view
// (GET /api/tracking/{token}?trail=true) and follows /ws/tracking/{token}: `initial_state`
// replaces the view, `driver_location` moves the driver and updates the ETA, `driver_arriving`
// says the driver is almost at the door, `order_status`
// updates the status and the timeline. A connection that drops is retried with exponential
// backoff (the shared LiveSocket of session.js, anonymous here); once the order reached a final status the server closes the socket and the page
// stays on that final state. Everything is written with textContent and SVG attributes, never
// as HTML, and no inline script or style is used (the page runs under a strict CSP). The map is
// the shared SVG map of map.js.
import { MapView, redrawOnResize, validPoint } from './map.js';
import { LiveSocket } from './session.js';

(function () {
  'use strict';

  var STEPS = [
    ['pending', 'Order placed'],
    ['accepted', 'Accepted by the pharmacy'],
    ['driver_assigned', 'Driver assigned'],
    ['picked_up', 'Picked up'],
    ['out_for_delivery', 'On the way'],
    ['delivered', 'Delivered']
  ];
  var HEADLINES = {
    pending: 'Order received',
    accepted: 'Being prepared',
    driver_assigned: 'Driver on the way to the pharmacy',
    picked_up: 'Picked up',
    out_for_delivery: 'On the way to you',
    delivered: 'Delivered',
    rejected: 'Order declined',
    cancelled: 'Order cancelled',
    failed: 'Delivery attempt failed',
    returned: 'Delivery to be rescheduled'
  };
  var VEHICLES = { bike: 'Bike', scooter: 'Scooter', car: 'Car', van: 'Van' };
  var TERMINAL = { delivered: true, rejected: true, cancelled: true };
  // How a delivery that stopped short reads: never why (the server does not say).
  var STOPPED = {
    rejected: 'Declined by the pharmacy',
    cancelled: 'Cancelled',
    failed: 'Delivery attempt failed, will be rescheduled',
    returned: 'Back at the pharmacy, will be rescheduled'
  };
  var AT_WORK = { driver_assigned: true, picked_up: true, out_for_delivery: true };
  var MAX_TRAIL = 2000;

  var app = document.getElementById('app');
  var match = /^\/track\/([^/]+)\/?$/.exec(location.pathname);
  if (!app || !match) return;
  var token = decodeURIComponent(match[1]);
  var tileUrl = app.getAttribute('data-tile-url') || '';
  var tileAttribution = app.getAttribute('data-tile-attribution') || '';

  var view = null; // the tracking view, as the server sends it
  var socket = null; // the LiveSocket, made at the start
  var finished = false;
  var refreshing = false;
  var refreshAgain = false;
  var etaReceivedAt = Date.now(); // when the current ETA was computed (close enough)

  function $(id) { return document.getElementById(id); }
  function text(id, value) {
    var el = $(id);
    if (el && el.textContent !== value) el.textContent = value;
  }
  function show(id, visible) {
    var el = $(id);
    if (el) el.hidden = !visible;
  }

  // ---------------------------------------------------------------------------------------
  // Formatting

  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  var dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit'
  });

  function formatTime(iso) {
    if (!iso) return '';
    var at = new Date(iso);
    if (isNaN(at.getTime())) return '';
    var today = new Date();
    return at.toDateString() === today.toDateString() ? timeFormat.format(at) : dateTimeFormat.format(at);
  }

  function formatEta(minutes) {
    if (minutes === null || minutes === undefined || !isFinite(minutes)) return null;
    if (minutes < 1) return '< 1 min';
    var rounded = Math.round(minutes);
    if (rounded < 60) return rounded + ' min';
    var hours = Math.floor(rounded / 60);
    var rest = rounded % 60;
    return hours + ' h' + (rest ? ' ' + rest + ' min' : '');
  }

  function ago(iso) {
    var at = new Date(iso).getTime();
    if (!isFinite(at)) return '';
    var seconds = Math.max(0, Math.round((Date.now() - at) / 1000));
    if (seconds < 5) return 'just now';
    if (seconds < 60) return seconds + ' s ago';
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + ' min ago';
    return 'at ' + formatTime(iso);
  }

  // ---------------------------------------------------------------------------------------
  // Connection state

  function setConnection(state, label) {
    var el = $('connection');
    el.setAttribute('data-state', state);
    text('connection-text', label);
  }

  // ---------------------------------------------------------------------------------------
  // Rendering

  function render() {
    if (!view) return;
    var status = view.status;
    app.setAttribute('data-status', status);
    document.title = (HEADLINES[status] || 'Tracking') + ' · ' + view.order_number + ' · MedEx';
    text('vendor', view.vendor_name || 'Your pharmacy');
    text('order-number', view.order_number);
    text('status', HEADLINES[status] || status);
    text('status-detail', detail());
    renderFacts();
    renderTimeline();
    renderMap();
    renderUpdated();
  }

  function driverName() {
    return view.driver && view.driver.first_name ? view.driver.first_name : 'Your driver';
  }

  function detail() {
    switch (view.status) {
      case 'pending': return 'The pharmacy will confirm your order shortly.';
      case 'accepted':
        return view.attempt > 1
          ? 'The pharmacy is sending your order out again and will hand it to a driver.'
          : 'The pharmacy is preparing your order and will hand it to a driver.';
      case 'driver_assigned': return driverName() + ' is heading to the pharmacy to collect your order.';
      case 'picked_up': return driverName() + ' has collected your order from the pharmacy.';
      case 'out_for_delivery':
        return view.arriving
          ? driverName() + ' is almost at your door.'
          : driverName() + ' is bringing your order to you.';
      case 'delivered': return 'Your order was delivered' + (view.delivered_at ? ' at ' + formatTime(view.delivered_at) : '') + '.';
      case 'rejected': return 'The pharmacy could not take this order. Please contact them for help.';
      case 'cancelled': return 'This order was cancelled' + (view.cancelled_at ? ' at ' + formatTime(view.cancelled_at) : '') + '.';
      case 'failed': return 'This delivery attempt did not succeed. It will be rescheduled; the pharmacy will be in touch.';
      case 'returned': return 'Your order is back at the pharmacy and will be rescheduled; the pharmacy will be in touch.';
      default: return '';
    }
  }

  function renderFacts() {
    var onItsWay = AT_WORK[view.status] && view.driver;
    show('driver-box', !!onItsWay);
    show('eta-box', !!onItsWay);
    if (!onItsWay) return;
    text('driver-name', view.driver.first_name || 'Your driver');
    text('driver-vehicle', VEHICLES[view.driver.vehicle_type] || view.driver.vehicle_type || '');
    var eta = formatEta(view.eta_minutes);
    if (eta) {
      text('eta', eta);
      var arrival = new Date(etaReceivedAt + view.eta_minutes * 60000);
      // On a run of several orders: only a count of the stops first, never whose.
      var before = typeof view.stops_before === 'number' && view.stops_before > 0
        ? ' · ' + view.stops_before + (view.stops_before === 1 ? ' stop' : ' stops') + ' before yours'
        : '';
      text('eta-clock', 'around ' + timeFormat.format(arrival) + before);
    } else {
      text('eta', '–');
      text('eta-clock', 'once the driver shares a location');
    }
  }

  function lastEntered(status) {
    var found = null;
    (view.timeline || []).forEach(function (entry) {
      if (entry.status === status) found = entry.at;
    });
    return found;
  }

  function renderTimeline() {
    var list = $('timeline');
    var status = view.status;
    var index = -1;
    STEPS.forEach(function (step, i) { if (step[0] === status) index = i; });
    var rows = [];
    if (index >= 0) {
      STEPS.forEach(function (step, i) {
        rows.push({
          status: step[0],
          label: step[1],
          state: i < index ? 'done' : i === index ? (status === 'delivered' ? 'done' : 'current') : 'todo',
          at: i <= index ? lastEntered(step[0]) : null
        });
      });
    } else {
      // Rejected, cancelled, or an attempt that failed: the steps it went through, then where
      // it stopped.
      STEPS.forEach(function (step) {
        var at = lastEntered(step[0]);
        if (at) rows.push({ status: step[0], label: step[1], state: 'done', at: at });
      });
      rows.push({
        status: status,
        label: STOPPED[status] || status,
        state: TERMINAL[status] ? 'stopped' : 'current',
        at: lastEntered(status) || view.cancelled_at
      });
    }
    while (list.children.length > rows.length) list.removeChild(list.lastChild);
    rows.forEach(function (row, i) {
      var li = list.children[i];
      if (!li) {
        li = document.createElement('li');
        var label = document.createElement('span');
        label.className = 'step-label';
        var time = document.createElement('time');
        time.className = 'step-time';
        li.appendChild(label);
        li.appendChild(time);
        list.appendChild(li);
      }
      li.className = 'step ' + row.state;
      li.setAttribute('data-step', row.status);
      if (row.state === 'current') li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
      li.children[0].textContent = row.label;
      li.children[1].textContent = row.at ? formatTime(row.at) : '';
      if (row.at) li.children[1].setAttribute('datetime', row.at);
      else li.children[1].removeAttribute('datetime');
    });
  }

  function renderUpdated() {
    var driver = view.driver;
    if (AT_WORK[view.status] && driver && driver.location && driver.last_location_update) {
      text('updated', 'Driver location updated ' + ago(driver.last_location_update));
    } else if (AT_WORK[view.status] && driver) {
      text('updated', 'Waiting for the driver\'s location…');
    } else {
      text('updated', '');
    }
  }

  // ---------------------------------------------------------------------------------------
  // The map: pickup, destination, the driver and its trail, and the way still to go.

  var map = new MapView($('map'), { tileUrl: tileUrl });

  function driverPoint() {
    var d = view.driver;
    return AT_WORK[view.status] && d && validPoint(d.location) ? d.location : null;
  }

  function renderMap() {
    var pickup = validPoint(view.pickup) ? view.pickup : null;
    var destination = validPoint(view.destination) ? view.destination : null;
    var driver = driverPoint();
    var trail = AT_WORK[view.status] ? (view.trail || []).filter(validPoint) : [];
    show('legend-driver', !!driver);
    show('legend-destination', !!destination);

    // Route hints: the way still to go, and where the driver has been.
    var ahead = [];
    if (driver) {
      ahead.push(driver);
      if (view.status === 'driver_assigned' && pickup) ahead.push(pickup);
    } else if (!TERMINAL[view.status] && pickup) {
      ahead.push(pickup);
    }
    if (destination && (ahead.length || (pickup && TERMINAL[view.status]))) {
      if (!ahead.length) ahead.push(pickup);
      ahead.push(destination);
    }
    var lines = [{ 'class': 'route-ahead', points: ahead }];
    if (trail.length >= 1) {
      lines.push({ id: 'trail', 'class': 'trail', points: trail.slice(-MAX_TRAIL).concat(driver ? [driver] : []) });
    }
    var markers = [];
    if (pickup) markers.push({ id: 'pickup-marker', kind: 'pickup', point: pickup, title: 'Pharmacy' });
    if (destination) markers.push({ id: 'destination-marker', kind: 'destination', point: destination, title: 'Destination' });
    if (driver) markers.push({ id: 'driver-marker', kind: 'driver', point: driver, title: 'Driver' });
    var drawn = map.draw({ markers: markers, lines: lines });
    show('map-empty', !drawn);
  }

  // ---------------------------------------------------------------------------------------
  // Data

  function setView(next) {
    view = next;
    etaReceivedAt = Date.now();
    if (!view.trail) view.trail = [];
    if (TERMINAL[view.status]) finish();
    render();
  }

  function apiUrl() {
    return '/api/tracking/' + encodeURIComponent(token) + '?trail=true';
  }

  function fetchView() {
    return fetch(apiUrl(), { headers: { accept: 'application/json' }, cache: 'no-store', credentials: 'omit' })
      .then(function (response) {
        if (response.status === 404) return { missing: true };
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json().then(function (body) { return { view: body }; });
      });
  }

  // The live messages carry no driver identity: after an assignment (or when the driver is not
  // known yet) the driver comes from the tracking view.
  function refreshDriver() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetchView().then(function (result) {
      if (result.view && view && !finished && result.view.status === view.status) {
        view.driver = result.view.driver;
        view.eta_minutes = result.view.eta_minutes;
        view.stops_before = result.view.stops_before;
        etaReceivedAt = Date.now();
        view.trail = result.view.trail || [];
        render();
      }
    }).catch(function () { /* the next message or reconnect brings it */ })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; refreshDriver(); }
      });
  }

  function onMessage(message) {
    switch (message.type) {
      case 'initial_state':
        setConnection(TERMINAL[message.status] ? 'final' : 'live', TERMINAL[message.status] ? 'Final status' : 'Live');
        delete message.type;
        delete message.sent_at;
        setView(message);
        break;
      case 'driver_location':
        if (!view || finished || !AT_WORK[view.status]) return;
        if (!view.driver) { refreshDriver(); return; }
        var point = { latitude: message.latitude, longitude: message.longitude };
        if (!validPoint(point)) return;
        view.driver.location = point;
        view.driver.last_location_update = message.recorded_at || message.sent_at;
        view.eta_minutes = message.eta_minutes === undefined ? null : message.eta_minutes;
        view.stops_before = message.stops_before;
        etaReceivedAt = Date.now();
        view.trail.push(point);
        if (view.trail.length > MAX_TRAIL) view.trail.splice(0, view.trail.length - MAX_TRAIL);
        render();
        break;
      case 'driver_arriving':
        if (!view || finished || !AT_WORK[view.status]) return;
        view.arriving = true;
        render();
        break;
      case 'order_status':
        if (!view) return;
        var previous = view.status;
        ['status', 'attempt', 'attempt_failed', 'accepted_at', 'picked_up_at', 'out_for_delivery_at', 'delivered_at', 'cancelled_at', 'timeline']
          .forEach(function (k) { if (k in message) view[k] = message[k]; });
        if (TERMINAL[view.status] || !AT_WORK[view.status]) {
          view.driver = null;
          view.eta_minutes = null;
          view.trail = [];
        } else if (view.status === 'driver_assigned' || !view.driver || !AT_WORK[previous]) {
          refreshDriver();
        }
        if (TERMINAL[view.status]) finish();
        render();
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------------------------
  // The live connection

  function finish() {
    finished = true;
    if (socket) socket.stop();
    setConnection('final', 'Final status');
  }

  function onSocketState(state) {
    if (finished) return;
    if (state === 'connecting') setConnection('connecting', 'Connecting…');
    else if (state === 'reconnecting' || state === 'offline') tickReconnect();
    // 'live' is shown once initial_state arrived.
  }

  // After several failures, check that the order still exists before trying again.
  function beforeRetry(failures) {
    if (failures < 3) return true;
    return fetchView().then(function (result) {
      if (result.missing) { gone(); return false; }
      if (result.view && !view) setView(result.view);
      return !finished;
    }).catch(function () { return true; });
  }

  function tickReconnect() {
    if (finished || !socket || socket.open) return;
    if (!navigator.onLine) {
      setConnection('reconnecting', 'Offline – waiting for the network');
      return;
    }
    if (!socket.waiting) {
      setConnection('reconnecting', 'Reconnecting…');
      return;
    }
    var seconds = Math.max(1, Math.ceil((socket.retryAt - Date.now()) / 1000));
    setConnection('reconnecting', 'Reconnecting in ' + seconds + ' s');
  }

  function gone() {
    finished = true;
    if (socket) socket.stop();
    setConnection('final', 'Not found');
    app.setAttribute('data-status', 'missing');
    text('status', 'We could not find this delivery');
    text('status-detail', 'This tracking link does not match any order any more.');
    show('eta-box', false);
    show('driver-box', false);
  }

  // ---------------------------------------------------------------------------------------
  // Start

  socket = new LiveSocket(null, '/ws/tracking/' + encodeURIComponent(token), {
    onMessage: onMessage, onState: onSocketState, beforeRetry: beforeRetry
  });
  window.addEventListener('offline', tickReconnect);
  setInterval(function () {
    tickReconnect();
    if (view && !finished) {
      renderUpdated();
      renderFacts();
    }
  }, 1000);
  redrawOnResize($('map-wrap'), function () { if (view) renderMap(); });
  if (tileAttribution) {
    text('attribution', tileAttribution);
    show('attribution', true);
  }

  fetchView().then(function (result) {
    if (result.missing) return gone();
    // A live initial_state may already have arrived; it is newer.
    if (!view) setView(result.view);
    if (!finished) socket.start();
  }).catch(function () {
    socket.start();
  });
})();
