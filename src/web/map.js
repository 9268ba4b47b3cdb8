// The SVG map the MedEx pages share: the tracking page, the console's fleet map and the driver
// app. Web Mercator, fitted to the points it is given, drawn from coordinates alone (works with
// no tile server and offline); raster tiles underneath only when the operator configured a tile
// URL (the page's CSP then allows that host in img-src). Markers are kept between draws, keyed
// by id, so only their transform changes and CSS can animate a moving driver. Everything is
// built with DOM methods, never from HTML strings.

const SVG_NS = 'http://www.w3.org/2000/svg';
const TILE = 256;
const SUBDOMAINS = 'abc';

/** Creates an SVG element with attributes, appended to `parent` when given. */
export function svg(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

/** Whether `p` has finite latitude and longitude. */
export function validPoint(p) {
  return !!p && Number.isFinite(p.latitude) && Number.isFinite(p.longitude);
}

function project(point) {
  const lat = Math.max(-85, Math.min(85, point.latitude));
  const sin = Math.sin(lat * Math.PI / 180);
  return {
    x: TILE * (point.longitude + 180) / 360,
    y: TILE * (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI))
  };
}

function round(n) { return Math.round(n * 10) / 10; }

/** How each kind of marker is drawn, centred on its point. */
const DRAW = {
  pickup(g) {
    svg('rect', { x: -13, y: -13, width: 26, height: 26, rx: 7, class: 'pickup-body' }, g);
    svg('path', { d: 'M-2.5 -8h5v5.5h5.5v5h-5.5v5.5h-5v-5.5h-5.5v-5h5.5z', class: 'marker-glyph' }, g);
  },
  destination(g) {
    svg('path', { d: 'M0 0c-2-6-11-11-11-19a11 11 0 0 1 22 0c0 8-9 13-11 19z', class: 'destination-body' }, g);
    svg('circle', { cx: 0, cy: -19, r: 4.2, class: 'marker-glyph' }, g);
  },
  stop(g) {
    svg('circle', { r: 12, class: 'stop-body' }, g);
    svg('text', { class: 'stop-number', x: 0, y: 4.5 }, g);
  },
  driver(g) {
    svg('circle', { r: 18, class: 'driver-pulse' }, g);
    svg('circle', { r: 10, class: 'driver-body' }, g);
    svg('circle', { r: 3.5, class: 'marker-glyph' }, g);
  }
};

/**
 * A map inside an `<svg>` element whose parent decides its size.
 *
 * `options.tileUrl`: a `{z}/{x}/{y}` template or '' for none; `options.idPrefix`: prefix of the
 * ids of the layers (`tiles`, `route`, `markers`, `scale`), so tests can find them.
 */
export class MapView {
  constructor(element, options = {}) {
    this.svg = element;
    this.tileUrl = options.tileUrl || '';
    const prefix = options.idPrefix || '';
    this.tileImages = new Map();
    const defs = svg('defs', {}, element);
    const pattern = svg('pattern', { id: prefix + 'grid', width: 24, height: 24, patternUnits: 'userSpaceOnUse' }, defs);
    svg('path', { d: 'M 24 0 L 0 0 0 24', class: 'grid-line' }, pattern);
    svg('rect', { class: 'map-bg', x: 0, y: 0, width: '100%', height: '100%' }, element);
    svg('rect', { class: 'map-grid', x: 0, y: 0, width: '100%', height: '100%', fill: 'url(#' + prefix + 'grid)' }, element);
    this.tiles = svg('g', { id: prefix + 'tiles' }, element);
    this.route = svg('g', { id: prefix + 'route' }, element);
    this.markers = svg('g', { id: prefix + 'markers' }, element);
    this.scale = svg('g', { id: prefix + 'scale', class: 'scale' }, element);
  }

  /** Removes everything drawn; returns false (nothing to show). */
  clear() {
    this.tiles.textContent = '';
    this.tileImages.clear();
    this.route.textContent = '';
    this.markers.textContent = '';
    this.scale.textContent = '';
    return false;
  }

  /**
   * Draws `markers` (`{id, kind: 'pickup'|'destination'|'stop'|'driver', point, title, label?,
   * number?}`: a `stop` shows its `number`, the place in a run) and
   * `lines` (`{id?, class, points}`), fitted to every point of both. Returns whether anything
   * was drawn.
   */
  draw({ markers = [], lines = [] }) {
    const wrap = this.svg.parentNode;
    const width = Math.max(200, Math.round(wrap.clientWidth));
    const height = Math.max(160, Math.round(wrap.clientHeight));
    this.svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    markers = markers.filter((m) => validPoint(m.point));
    lines = lines.map((l) => ({ ...l, points: l.points.filter(validPoint) })).filter((l) => l.points.length >= 2);
    const all = markers.map((m) => m.point).concat(...lines.map((l) => l.points));
    if (all.length === 0) return this.clear();

    // Fit the points, with room for the markers, and never closer than street level.
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const p of all.map(project)) {
      minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
      minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
    }
    const pad = 40;
    const spanX = Math.max(maxX - minX, 1e-9);
    const spanY = Math.max(maxY - minY, 1e-9);
    let zoom = Math.log2(Math.min((width - 2 * pad) / spanX, (height - 2 * pad - 10) / spanY));
    zoom = Math.max(1, Math.min(17, zoom));
    const scale = Math.pow(2, zoom);
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2 - 6 / scale; // a little room above for the pin heads
    const screen = (point) => {
      const p = project(point);
      return { x: round((p.x - cx) * scale + width / 2), y: round((p.y - cy) * scale + height / 2) };
    };

    this.drawTiles(width, height, zoom, cx, cy);
    this.drawScale(width, zoom, height, all[0].latitude);

    this.route.textContent = '';
    for (const line of lines) {
      const attrs = { class: line.class, points: line.points.map(screen).map((p) => p.x + ',' + p.y).join(' ') };
      if (line.id) attrs.id = line.id;
      svg('polyline', attrs, this.route);
    }

    const wanted = new Set(markers.map((m) => m.id));
    for (const el of Array.from(this.markers.children)) {
      if (!wanted.has(el.id)) el.remove();
    }
    // Drivers last, so they stay on top.
    const order = { pickup: 0, destination: 1, stop: 2, driver: 3 };
    markers.sort((a, b) => order[a.kind] - order[b.kind]);
    for (const m of markers) this.place(m, screen(m.point));
    return true;
  }

  place(marker, at) {
    let el = this.markers.querySelector('[id="' + CSS.escape(marker.id) + '"]');
    if (!el) {
      el = svg('g', { id: marker.id, class: 'marker ' + marker.kind + '-marker' });
      svg('title', {}, el);
      DRAW[marker.kind](el);
      if (marker.label) svg('text', { class: 'marker-label', x: 0, y: marker.kind === 'driver' ? 28 : 26 }, el);
    }
    el.querySelector('title').textContent = marker.title || marker.kind;
    const label = el.querySelector('text.marker-label');
    if (label) label.textContent = marker.label || '';
    const number = el.querySelector('text.stop-number');
    if (number) number.textContent = marker.number === undefined ? '' : String(marker.number);
    this.markers.appendChild(el);
    el.setAttribute('transform', 'translate(' + at.x + ' ' + at.y + ')');
    el.setAttribute('data-lat', String(marker.point.latitude));
    el.setAttribute('data-lon', String(marker.point.longitude));
  }

  drawTiles(width, height, zoom, cx, cy) {
    if (!this.tileUrl) return;
    const tz = Math.max(0, Math.min(19, Math.round(zoom)));
    const n = Math.pow(2, tz);
    const scale = Math.pow(2, zoom);
    const size = TILE * Math.pow(2, zoom - tz); // a tile's size on screen
    const left = cx - width / 2 / scale;
    const top = cy - height / 2 / scale;
    const x0 = Math.floor(left * n / TILE);
    const y0 = Math.max(0, Math.floor(top * n / TILE));
    const x1 = Math.floor((left + width / scale) * n / TILE);
    const y1 = Math.min(n - 1, Math.floor((top + height / scale) * n / TILE));
    const wanted = new Set();
    for (let tx = x0; tx <= x1; tx++) {
      for (let ty = y0; ty <= y1; ty++) {
        const wx = ((tx % n) + n) % n;
        const key = tz + '/' + tx + '/' + ty;
        let img = this.tileImages.get(key);
        if (!img) {
          const url = this.tileUrl
            .replace('{s}', SUBDOMAINS[(wx + ty) % SUBDOMAINS.length])
            .replace('{z}', String(tz)).replace('{x}', String(wx)).replace('{y}', String(ty));
          img = svg('image', { href: url, class: 'tile', preserveAspectRatio: 'none' }, this.tiles);
          this.tileImages.set(key, img);
        }
        img.setAttribute('x', round((tx * TILE / n - cx) * scale + width / 2));
        img.setAttribute('y', round((ty * TILE / n - cy) * scale + height / 2));
        img.setAttribute('width', round(size + 0.5));
        img.setAttribute('height', round(size + 0.5));
        wanted.add(key);
      }
    }
    for (const [key, img] of this.tileImages) {
      if (!wanted.has(key)) {
        img.remove();
        this.tileImages.delete(key);
      }
    }
  }

  drawScale(width, zoom, height, latitude) {
    const group = this.scale;
    group.textContent = '';
    const metresPerPixel = 156543.03392 * Math.cos(latitude * Math.PI / 180) / Math.pow(2, zoom);
    const steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];
    let metres = steps[0];
    for (const s of steps) if (s / metresPerPixel <= Math.min(110, width / 3)) metres = s;
    const length = round(metres / metresPerPixel);
    const x = 12, y = height - 12;
    svg('path', { d: 'M' + x + ' ' + (y - 5) + 'v5h' + length + 'v-5', class: 'scale-bar' }, group);
    const label = svg('text', { x: x + 2, y: y - 8, class: 'scale-text' }, group);
    label.textContent = metres >= 1000 ? (metres / 1000) + ' km' : metres + ' m';
  }
}

/** Redraws `map` (via `redraw`) whenever its container changes size. */
export function redrawOnResize(element, redraw) {
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => redraw()).observe(element);
  } else {
    window.addEventListener('resize', redraw);
  }
}
