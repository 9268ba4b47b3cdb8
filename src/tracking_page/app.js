// MedEx public tracking page.
//
// Reads the tracking token from its own URL, fetches the public tracking view
// (GET /api/tracking/{token}?trail=true) and follows /ws/tracking/{token}: `initial_state`
// replaces the view, `driver_location` moves the driver and updates the ETA, `order_status`
// updates the status and the timeline. A connection that drops is retried with exponential
// backoff; once the order reached a final status the server closes the socket and the page
// stays on that final state. Everything is written with textContent and SVG attributes, never
// as HTML, and no inline script or style is used (the page runs under a strict CSP).
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
  var MAX_BACKOFF_MS = 30000;

  var app = document.getElementById('app');
  var match = /^\/track\/([^/]+)\/?$/.exec(location.pathname);
  if (!app || !match) return;
  var token = decodeURIComponent(match[1]);
  var tileUrl = app.getAttribute('data-tile-url') || '';
  var tileAttribution = app.getAttribute('data-tile-attribution') || '';

  var view = null; // the tracking view, as the server sends it
  var socket = null;
  var attempt = 0; // failed connections in a row
  var retryTimer = null;
  var retryAt = 0;
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
      case 'out_for_delivery': return driverName() + ' is bringing your order to you.';
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
  // The map: Web Mercator in SVG, fitted to the points; tiles only when configured.

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var TILE = 256;

  function svg(name, attrs, parent) {
    var el = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  function project(point) {
    var lat = Math.max(-85, Math.min(85, point.latitude));
    var sin = Math.sin(lat * Math.PI / 180);
    return {
      x: TILE * (point.longitude + 180) / 360,
      y: TILE * (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI))
    };
  }

  function validPoint(p) {
    return p && isFinite(p.latitude) && isFinite(p.longitude);
  }

  function driverPoint() {
    var d = view.driver;
    return AT_WORK[view.status] && d && validPoint(d.location) ? d.location : null;
  }

  function round(n) { return Math.round(n * 10) / 10; }

  function renderMap() {
    var map = $('map');
    var wrap = $('map-wrap');
    var width = Math.max(200, Math.round(wrap.clientWidth));
    var height = Math.max(160, Math.round(wrap.clientHeight));
    map.setAttribute('viewBox', '0 0 ' + width + ' ' + height);

    var pickup = validPoint(view.pickup) ? view.pickup : null;
    var destination = validPoint(view.destination) ? view.destination : null;
    var driver = driverPoint();
    var trail = AT_WORK[view.status] ? (view.trail || []).filter(validPoint) : [];
    var all = [pickup, destination, driver].filter(Boolean).concat(trail);
    show('map-empty', all.length === 0);
    show('legend-driver', !!driver);
    show('legend-destination', !!destination);
    var markers = $('markers');
    var route = $('route');
    if (all.length === 0) {
      markers.textContent = '';
      route.textContent = '';
      $('tiles').textContent = '';
      $('scale').textContent = '';
      return;
    }

    // Fit the points, with room for the markers, and never closer than street level.
    var pts = all.map(project);
    var minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    pts.forEach(function (p) {
      minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
      minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
    });
    var pad = 40;
    var spanX = Math.max(maxX - minX, 1e-9);
    var spanY = Math.max(maxY - minY, 1e-9);
    var zoom = Math.log2(Math.min((width - 2 * pad) / spanX, (height - 2 * pad - 10) / spanY));
    zoom = Math.max(1, Math.min(17, zoom));
    var scale = Math.pow(2, zoom);
    var cx = (minX + maxX) / 2;
    var cy = (minY + maxY) / 2 - 6 / scale; // a little room above for the pin heads
    function screen(point) {
      var p = project(point);
      return { x: round((p.x - cx) * scale + width / 2), y: round((p.y - cy) * scale + height / 2) };
    }

    renderTiles(width, height, zoom, cx, cy);
    renderScale(width, height, zoom, (pickup || destination || driver).latitude);

    // Route hints: the way still to go, and where the driver has been.
    route.textContent = '';
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
    if (ahead.length >= 2) {
      svg('polyline', {
        'class': 'route-ahead',
        points: ahead.map(screen).map(function (p) { return p.x + ',' + p.y; }).join(' ')
      }, route);
    }
    if (trail.length >= 1) {
      var path = trail.slice(-MAX_TRAIL).concat(driver ? [driver] : []);
      svg('polyline', {
        'class': 'trail',
        id: 'trail',
        points: path.map(screen).map(function (p) { return p.x + ',' + p.y; }).join(' ')
      }, route);
    }

    // Markers are kept between renders, so only their positions change.
    placeMarker(markers, 'pickup-marker', pickup && screen(pickup), pickup, drawPickup, 'Pharmacy');
    placeMarker(markers, 'destination-marker', destination && screen(destination), destination, drawDestination, 'Destination');
    placeMarker(markers, 'driver-marker', driver && screen(driver), driver, drawDriver, 'Driver');
  }

  function placeMarker(parent, id, at, point, draw, title) {
    var el = $(id);
    if (!at) {
      if (el) el.parentNode.removeChild(el);
      return;
    }
    if (!el) {
      el = svg('g', { id: id, 'class': 'marker ' + id }, null);
      svg('title', {}, el).textContent = title;
      draw(el);
    }
    parent.appendChild(el); // keeps the driver on top
    el.setAttribute('transform', 'translate(' + at.x + ' ' + at.y + ')');
    el.setAttribute('data-lat', String(point.latitude));
    el.setAttribute('data-lon', String(point.longitude));
  }

  function drawPickup(g) {
    svg('rect', { x: -13, y: -13, width: 26, height: 26, rx: 7, 'class': 'pickup-body' }, g);
    svg('path', { d: 'M-2.5 -8h5v5.5h5.5v5h-5.5v5.5h-5v-5.5h-5.5v-5h5.5z', 'class': 'marker-glyph' }, g);
  }

  function drawDestination(g) {
    svg('path', {
      d: 'M0 0c-2-6-11-11-11-19a11 11 0 0 1 22 0c0 8-9 13-11 19z',
      'class': 'destination-body'
    }, g);
    svg('circle', { cx: 0, cy: -19, r: 4.2, 'class': 'marker-glyph' }, g);
  }

  function drawDriver(g) {
    svg('circle', { r: 18, 'class': 'driver-pulse' }, g);
    svg('circle', { r: 10, 'class': 'driver-body' }, g);
    svg('circle', { r: 3.5, 'class': 'marker-glyph' }, g);
  }

  var tileImages = {};

  function renderTiles(width, height, zoom, cx, cy) {
    var layer = $('tiles');
    if (!tileUrl) return;
    var tz = Math.max(0, Math.min(19, Math.round(zoom)));
    var n = Math.pow(2, tz);
    var scale = Math.pow(2, zoom);
    var size = TILE * Math.pow(2, zoom - tz); // a tile's size on screen
    var left = cx - width / 2 / scale;
    var top = cy - height / 2 / scale;
    var x0 = Math.floor(left * n / TILE);
    var y0 = Math.max(0, Math.floor(top * n / TILE));
    var x1 = Math.floor((left + width / scale) * n / TILE);
    var y1 = Math.min(n - 1, Math.floor((top + height / scale) * n / TILE));
    var wanted = {};
    var subdomains = 'abc';
    for (var tx = x0; tx <= x1; tx++) {
      for (var ty = y0; ty <= y1; ty++) {
        var wx = ((tx % n) + n) % n;
        var url = tileUrl
          .replace('{s}', subdomains[(wx + ty) % subdomains.length])
          .replace('{z}', String(tz)).replace('{x}', String(wx)).replace('{y}', String(ty));
        var key = tz + '/' + tx + '/' + ty;
        var img = tileImages[key];
        if (!img) {
          img = svg('image', { href: url, 'class': 'tile', preserveAspectRatio: 'none' }, layer);
          tileImages[key] = img;
        }
        img.setAttribute('x', round((tx * TILE / n - cx) * scale + width / 2));
        img.setAttribute('y', round((ty * TILE / n - cy) * scale + height / 2));
        img.setAttribute('width', round(size + 0.5));
        img.setAttribute('height', round(size + 0.5));
        wanted[key] = true;
      }
    }
    Object.keys(tileImages).forEach(function (key) {
      if (!wanted[key]) {
        layer.removeChild(tileImages[key]);
        delete tileImages[key];
      }
    });
  }

  function renderScale(width, height, zoom, latitude) {
    var group = $('scale');
    group.textContent = '';
    var metresPerPixel = 156543.03392 * Math.cos(latitude * Math.PI / 180) / Math.pow(2, zoom);
    var steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];
    var metres = steps[0];
    steps.forEach(function (s) { if (s / metresPerPixel <= Math.min(110, width / 3)) metres = s; });
    var length = round(metres / metresPerPixel);
    var x = 12, y = height - 12;
    svg('path', { d: 'M' + x + ' ' + (y - 5) + 'v5h' + length + 'v-5', 'class': 'scale-bar' }, group);
    var label = svg('text', { x: x + 2, y: y - 8, 'class': 'scale-text' }, group);
    label.textContent = metres >= 1000 ? (metres / 1000) + ' km' : metres + ' m';
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

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (!message || typeof message !== 'object') return;
    switch (message.type) {
      case 'initial_state':
        attempt = 0;
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
    clearTimeout(retryTimer);
    retryTimer = null;
    setConnection('final', 'Final status');
  }

  function connect() {
    if (finished || socket) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    setConnection(attempt ? 'reconnecting' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws;
    try {
      ws = new WebSocket(scheme + '//' + location.host + '/ws/tracking/' + encodeURIComponent(token));
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onmessage = onMessage;
    ws.onclose = function () {
      if (socket !== ws) return;
      socket = null;
      if (finished) {
        setConnection('final', 'Final status');
        return;
      }
      attempt += 1;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (finished) return;
    // 1 s, 2 s, 4 s … up to 30 s, with jitter so that many pages do not come back at once.
    var base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.max(0, attempt - 1)));
    var delay = Math.round(base * (0.6 + Math.random() * 0.4));
    retryAt = Date.now() + delay;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () {
      retryTimer = null;
      if (attempt >= 3) {
        // After several failures, check that the order still exists before trying again.
        fetchView().then(function (result) {
          if (result.missing) return gone();
          if (result.view && !view) setView(result.view);
          connect();
        }).catch(connect);
      } else {
        connect();
      }
    }, delay);
    tickReconnect();
  }

  function tickReconnect() {
    if (!retryTimer) return;
    if (!navigator.onLine) {
      setConnection('reconnecting', 'Offline – waiting for the network');
      return;
    }
    var seconds = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    setConnection('reconnecting', 'Reconnecting in ' + seconds + ' s');
  }

  function reconnectNow() {
    if (finished || socket) return;
    attempt = Math.min(attempt, 1);
    connect();
  }

  function gone() {
    finished = true;
    setConnection('final', 'Not found');
    app.setAttribute('data-status', 'missing');
    text('status', 'We could not find this delivery');
    text('status-detail', 'This tracking link does not match any order any more.');
    show('eta-box', false);
    show('driver-box', false);
  }

  // ---------------------------------------------------------------------------------------
  // Start

  window.addEventListener('online', reconnectNow);
  window.addEventListener('offline', tickReconnect);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') reconnectNow();
  });
  setInterval(function () {
    tickReconnect();
    if (view && !finished) {
      renderUpdated();
      renderFacts();
    }
  }, 1000);
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(function () { if (view) renderMap(); }).observe($('map-wrap'));
  } else {
    window.addEventListener('resize', function () { if (view) renderMap(); });
  }
  if (tileAttribution) {
    text('attribution', tileAttribution);
    show('attribution', true);
  }

  fetchView().then(function (result) {
    if (result.missing) return gone();
    // A live initial_state may already have arrived; it is newer.
    if (!view) setView(result.view);
    if (!finished) connect();
  }).catch(function () {
    connect();
  });
})();
