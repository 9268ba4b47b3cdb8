// Small DOM and formatting helpers the console and the driver app share. Elements are built with
// DOM methods and text with textContent only: nothing the server or a user typed is ever parsed
// as HTML (and the CSP admits no inline script or style anyway).

/**
 * `h('button', {class: 'primary', onclick: f}, 'Accept')`: an element with attributes
 * (`on*` functions become listeners, `false`/`null` attributes are left out) and children
 * (strings become text nodes, arrays are flattened, null is skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.textContent = '';
  append(el, children);
  return el;
}

/** A labelled form field: `<label>Text <input …></label>` with a generated id. */
let fieldCount = 0;
export function field(label, control, hint) {
  const id = control.id || ('f' + (++fieldCount));
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = id + '-hint';
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('span', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export const STATUS_LABELS = {
  pending: 'Pending',
  accepted: 'Accepted',
  driver_assigned: 'Driver assigned',
  picked_up: 'Picked up',
  out_for_delivery: 'Out for delivery',
  delivered: 'Delivered',
  rejected: 'Rejected',
  cancelled: 'Cancelled',
  failed: 'Attempt failed',
  returned: 'Returned to pharmacy'
};

export const DRIVER_STATUS_LABELS = {
  offline: 'Offline',
  available: 'Available',
  busy: 'Busy',
  on_break: 'On a break'
};

export const FAILURE_REASONS = [
  ['recipient_absent', 'Recipient absent'],
  ['address_not_found', 'Address not found'],
  ['refused', 'Refused by the recipient'],
  ['handover_code_failed', 'Handover code did not match'],
  ['unsafe_location', 'Unsafe location'],
  ['damaged', 'Parcel damaged'],
  ['other', 'Other (describe it)']
];

/** A status as a badge. */
export function badge(status, labels = STATUS_LABELS) {
  return h('span', { class: 'badge', 'data-status': status }, labels[status] || status);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** A time: the clock for today, day and clock otherwise; '' when absent. */
export function when(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (isNaN(at.getTime())) return '';
  return at.toDateString() === new Date().toDateString() ? timeFormat.format(at) : dateTimeFormat.format(at);
}

/** A `<time>` element. */
export function time(iso) {
  return h('time', { datetime: iso || false }, when(iso));
}

/** Money as the API sends it (a number with two decimals). */
export function money(amount) {
  const n = Number(amount);
  return Number.isFinite(n) ? n.toFixed(2) : '–';
}

/** Kilometres, one decimal. */
export function km(value) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(1) + ' km' : '–';
}

/** Minutes, rounded: `12 min`, `1 h 05 min`. */
export function minutes(value) {
  const n = Math.round(Number(value));
  if (!Number.isFinite(n)) return '–';
  return n < 60 ? n + ' min' : Math.floor(n / 60) + ' h ' + String(n % 60).padStart(2, '0') + ' min';
}

/** Statuses of the orders that have stops ahead in a driver's run (GET /drivers/{id}/run). */
export const RUN_STATUSES = ['driver_assigned', 'picked_up', 'out_for_delivery'];

/**
 * The stops of a run (GET /drivers/{id}/run) as a driver makes them: consecutive pickups at one
 * place are one stop, whose `orders` lists each order it serves (the run lists a pickup per order).
 */
export function runStops(run) {
  const out = [];
  for (const stop of (run && run.stops) || []) {
    const last = out[out.length - 1];
    if (stop.kind === 'pickup' && last && last.kind === 'pickup'
        && last.latitude === stop.latitude && last.longitude === stop.longitude) {
      last.orders.push(stop.order_id);
    } else {
      out.push({ ...stop, orders: [stop.order_id] });
    }
  }
  return out;
}

/** A stop's arrival as the run answers it: `14:05 (in 12 min)`. */
export function stopEta(stop) {
  const left = Number(stop.eta_minutes);
  return when(stop.eta) + (Number.isFinite(left) ? ' (in ' + minutes(Math.max(0, left)) + ')' : '');
}

/** A drop-off's time window: `14:00–16:00`, `after 14:00`, `by 16:00`; '' when it has none. */
export function stopWindow(window) {
  if (!window) return '';
  const after = when(window.deliver_after);
  const before = when(window.deliver_before);
  if (after && before) return after + '–' + before;
  return after ? 'after ' + after : before ? 'by ' + before : '';
}

/** Today's local date as `YYYY-MM-DD`. */
export function today(offsetDays = 0) {
  const d = new Date(Date.now() + offsetDays * 86400000);
  return d.getFullYear() + '-' + String(d.getMonth() + 1).padStart(2, '0') + '-' + String(d.getDate()).padStart(2, '0');
}

/** This browser's UTC offset as `+02:00`. */
export function utcOffset() {
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes >= 0 ? '+' : '-';
  const abs = Math.abs(minutes);
  return sign + String(Math.floor(abs / 60)).padStart(2, '0') + ':' + String(abs % 60).padStart(2, '0');
}

/**
 * A status line that announces itself to screen readers: `say(text, 'error'|'ok'|'')`.
 */
export function notice(el) {
  return function say(text, kind = '') {
    el.textContent = text || '';
    el.setAttribute('data-kind', kind);
    el.hidden = !text;
  };
}

/** Downloads `blob` as a file called `name`. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Disables `button` while `work` runs; returns what `work` returns. */
export async function busy(button, work) {
  if (button) button.disabled = true;
  try {
    return await work();
  } finally {
    if (button) button.disabled = false;
  }
}
