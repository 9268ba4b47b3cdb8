#!/usr/bin/env python3
"""End-to-end test of the operator console (/console) and the driver app (/driver) in Chromium.

    MEDEX_SERVER_BIN=target/debug/examples/server python3 tests/browser/test_console_and_driver.py

Creates an admin with the server's `--create-admin` command, starts the server binary named by
MEDEX_SERVER_BIN on port 0 (then again on the port it chose, for a restart) with a temporary
data directory, and runs a whole delivery through the two apps. Set up over the API: a pharmacy
whose policy asks for a photo, a signature and the handover code, and a customer. Then, in the
browser: the pharmacy signs in to the console and registers a driver; the driver signs in on a
phone with a mocked position and goes available; the customer's order arrives live in the
console, which accepts it and assigns the driver; the driver accepts, picks up, streams its
position (the console's fleet map moves the marker), goes out for delivery and fails a first
attempt with a reason; the pharmacy confirms the return and starts a new attempt, assigns the
driver again; the driver delivers with a photo, a drawn signature and the handover code (read as
the customer through the API, a wrong one first). The console shows the custody record
(verified) and the proofs; the daily report shows the day with its chart and its CSV downloads.
The driver app survives a reload and a server restart, keeping the positions it took meanwhile
and sending them late as one `locations` batch; two console tabs reloading at once stay signed
in (refresh tokens rotate; a reuse would end the session). API keys and webhooks are made and
revoked in the console; an admin deactivates an account, and changes the configuration; with
MEDEX_TILE_URL set the fleet map draws tiles from that host (a local stand-in) under its
policy. Access tokens last one minute, so the apps also refresh (and rotate) their tokens
while they work.

Every page is checked for requests to other hosts, Content-Security-Policy violations and
console errors. Screenshots go to tests/artifacts/ (git-ignored).

Needs Chromium (/usr/bin/chromium, or MEDEX_CHROMIUM) and the Python package `playwright`.
Without them it prints "SKIPPED: <reason>" and exits 0, unless MEDEX_REQUIRE_BROWSER_TEST=1,
which turns a skip into a failure. Exits non-zero on any failure.
"""

import http.server
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts", "console-and-driver")
CHROMIUM = os.environ.get("MEDEX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 15_000

ADMIN = ("admin@example.com", "admin-password-1")
PHARMACY = ("owner@pharmacy.example", "pharmacy-pass-1")
DRIVER = ("dee@pharmacy.example", "driver-pass-1")
CUSTOMER = ("ann@example.com", "customer-pass-1")
PICKUP = (52.5219, 13.4132)
DESTINATION = (52.5290, 13.4010)


def skip(reason):
    if os.environ.get("MEDEX_REQUIRE_BROWSER_TEST") == "1":
        print(f"FAILED: the browser test must run here (MEDEX_REQUIRE_BROWSER_TEST=1) but: {reason}")
        sys.exit(1)
    print(f"SKIPPED: {reason}")
    sys.exit(0)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def step(message):
    print(f"  - {message}", flush=True)


# ------------------------------------------------------------------------------------------
# The server


class Server:
    """The example server on a port of its choosing (port 0), then on that same port again."""

    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.port = 0
        self.base = None
        self.log_path = os.path.join(ARTIFACTS, "server.log")
        self.process = None
        self.extra_env = {}

    def env(self):
        env = dict(os.environ)
        env.update(
            MEDEX_DATA_DIR=self.data_dir,
            MEDEX_ADDR=f"127.0.0.1:{self.port}",
            MEDEX_LOG=env.get("MEDEX_LOG", "warn"),
            MEDEX_SHUTDOWN_GRACE_SECS="2",
            MEDEX_WEBHOOK_ALLOW_PRIVATE="true",
            # Access tokens of one minute: the apps refresh (rotating the refresh token) every
            # 30 s while the scenario runs, not only when they start.
            MEDEX_ACCESS_TOKEN_MINUTES="1",
            NO_COLOR="1",
        )
        for name in ("MEDEX_TILE_URL", "MEDEX_TILE_ATTRIBUTION", "MEDEX_ADMIN_EMAIL", "MEDEX_ADMIN_PASSWORD",
                     "MEDEX_DATABASE_URL", "MEDEX_REDIS_URL"):
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def create_admin(self, email, password):
        env = self.env()
        env["MEDEX_ADMIN_PASSWORD"] = password
        done = subprocess.run([self.binary, "--create-admin", email], env=env, cwd=self.data_dir,
                              capture_output=True, text=True, timeout=120)
        check(done.returncode == 0, f"--create-admin failed: {done.stdout}{done.stderr}")
        check("created admin" in done.stdout, done.stdout)

    def start(self):
        log = open(self.log_path, "a")
        start_at = log.tell()
        self.process = subprocess.Popen([self.binary], env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.data_dir)
        log.close()
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            with open(self.log_path) as f:
                f.seek(start_at)
                found = re.search(r"API\s+http://127\.0\.0\.1:(\d+)/api", f.read())
            if found:
                self.port = int(found.group(1))
                self.base = f"http://127.0.0.1:{self.port}"
                try:
                    with urllib.request.urlopen(f"{self.base}/api/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
            time.sleep(0.2)
        raise RuntimeError("the server did not start within 90 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def api(server, method, path, body=None, token=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.base}/api{path}", data=data, method=method)
    request.add_header("accept", "application/json")
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    check(status in expect, f"{method} {path}: HTTP {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def login(server, email, password, expect=(200,)):
    return api(server, "POST", "/auth/login", {"email": email, "password": password}, expect=expect)


def png(width=64, height=48, inside=b"\x0f\x76\x6e", outside=b"\xff\xff\xff", border=12):
    """A small real PNG: a square of one colour on another (a teal one on white by default)."""
    rows = []
    for y in range(height):
        row = bytearray(b"\0")
        for x in range(width):
            within = border <= x < width - border and border <= y < height - border
            row += inside if within else outside
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


class TileServer:
    """A local stand-in for a tile provider, counting the tiles asked for."""

    def __init__(self):
        tile = png(256, 256, inside=b"\xe6\xed\xe4", outside=b"\xc9\xd6\xdf", border=1)
        self.requests = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------------
# Pages

INIT_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


class Watch:
    """What a page did that it must not: other hosts, CSP violations, console errors."""

    def __init__(self, server):
        self.server = server
        self.errors = []
        self.foreign = []
        self.frames_sent = []
        self.refreshes = 0
        self.allowed = []  # other origins a page may use (a configured tile server)

    def attach(self, page):
        page.add_init_script(INIT_SCRIPT)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

        def on_request(request):
            url = request.url
            if url.endswith("/api/auth/refresh"):
                self.refreshes += 1
            if not (url.startswith(self.server.base + "/") or url.startswith("ws://127.0.0.1:" + str(self.server.port) + "/")
                    or url.startswith("data:") or url.startswith("blob:")
                    or any(url.startswith(a) for a in self.allowed)):
                self.foreign.append(url)

        page.on("request", on_request)

        def on_socket(ws):
            on_request(type("R", (), {"url": ws.url})())
            ws.on("framesent", lambda payload: self.frames_sent.append(payload if isinstance(payload, str) else payload.decode()))

        page.on("websocket", on_socket)
        return page

    def assert_clean(self, page, where, expected=()):
        violations = page.evaluate("window.__cspViolations")
        check(not violations, f"{where}: Content-Security-Policy violations: {violations}")
        errors = [e for e in self.errors if not any(x in e for x in expected)]
        check(not errors, f"{where}: browser errors: {errors}")
        check(not self.foreign, f"{where}: requests to other hosts: {self.foreign}")
        self.errors.clear()


def new_context(browser, viewport, **extra):
    phone = viewport is PHONE
    return browser.new_context(viewport=viewport, device_scale_factor=2 if phone else 1, locale="en-GB",
                               timezone_id="Europe/Berlin", is_mobile=phone, has_touch=phone,
                               accept_downloads=True, **extra)


def shot(page, name):
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    step(f"screenshot {os.path.relpath(path, ROOT)}")


def sign_in(page, email, password):
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def wait_js(page, script, arg=None, timeout=WAIT_MS):
    page.wait_for_function(script, arg=arg, timeout=timeout)


def order_item(page, order_id):
    return page.locator(f"li.order[data-order-id='{order_id}']")


def wait_order_status(page, order_id, status, timeout=WAIT_MS):
    wait_js(page, "([id, s]) => { const li = document.querySelector(`li.order[data-order-id='${id}']`); return li && li.dataset.status === s; }",
            [order_id, status], timeout)


def driver_marker(page, driver_id):
    return page.evaluate("""id => { const m = document.getElementById('driver-' + id);
      return m && { lat: m.getAttribute('data-lat'), lon: m.getAttribute('data-lon'), transform: m.getAttribute('transform') }; }""",
                         driver_id)


def check_accessible(page, where):
    """Every visible control has a name, and nothing is wider than the screen."""
    unnamed = page.evaluate("""() => {
      const bad = [];
      for (const el of document.querySelectorAll('button, input, select, textarea, a[href]')) {
        if (el.closest('[hidden]') || el.type === 'hidden' || el.offsetParent === null) continue;
        const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
          || (el.textContent || '').trim() || el.getAttribute('title');
        if (!labelled) bad.push(el.outerHTML.slice(0, 80));
      }
      return bad;
    }""")
    check(not unnamed, f"{where}: controls without a name: {unnamed}")
    # Text contrast (WCAG AA): 4.5:1, or 3:1 for large text; disabled controls are exempt.
    low = page.evaluate("""() => {
      const rgb = (c) => { const m = c.match(/[\\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
      const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
      const background = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = rgb(getComputedStyle(e).backgroundColor);
          if ((c[3] === undefined ? 1 : c[3]) > 0.5) return c;
        }
        return [255, 255, 255];
      };
      const bad = [];
      for (const el of document.querySelectorAll('body *')) {
        if (el.closest('svg, [hidden], [disabled]') || el.offsetParent === null) continue;
        const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own) continue;
        const style = getComputedStyle(el);
        const a = lum(rgb(style.color)), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
        const large = size >= 24 || (bold && size >= 18.66);
        if (ratio < (large ? 3 : 4.5)) bad.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
      }
      return bad;
    }""")
    check(not low, f"{where}: text with too little contrast: {low}")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    check(width <= viewport + 1, f"{where}: the page is {width}px wide on a {viewport}px screen")


# ------------------------------------------------------------------------------------------
# The scenario


def run(browser, server):
    watch = Watch(server)

    step("set up over the API: a pharmacy asking for every proof, a customer")
    api(server, "POST", "/vendors/register", {
        "email": PHARMACY[0], "password": PHARMACY[1], "business_name": "Corner Pharmacy",
        "phone": "+49 30 555 0100", "address": "Alexanderplatz 1, Berlin",
        "latitude": PICKUP[0], "longitude": PICKUP[1]})
    vendor_token = login(server, *PHARMACY)["access_token"]
    vendor_id = api(server, "GET", "/auth/me", token=vendor_token)["vendor_id"]
    api(server, "PATCH", f"/vendors/{vendor_id}", {"require_proof_photo": True, "require_signature": True,
                                                 "require_handover_code": True}, token=vendor_token)
    customer = api(server, "POST", "/auth/register", {"email": CUSTOMER[0], "password": CUSTOMER[1],
                                                      "full_name": "Ann Patient"})["access_token"]

    step("GET / links the console, the driver app and the docs")
    home = watch.attach(new_context(browser, PHONE).new_page())
    response = home.goto(server.base + "/")
    check(response.status == 200 and response.headers["content-type"].startswith("text/html"), "landing page")
    for name, href in [("Operator console", "/console"), ("Driver app", "/driver"), ("API documentation", "/docs/")]:
        check(home.get_by_role("link", name=name).get_attribute("href") == href, f"link {name}")
    watch.assert_clean(home, "landing page")
    home.context.close()

    step("the pharmacy signs in to the console (desktop)")
    console_ctx = new_context(browser, DESKTOP)
    console = watch.attach(console_ctx.new_page())
    response = console.goto(server.base + "/console")
    csp = response.headers.get("content-security-policy", "")
    check("script-src 'self'" in csp and "unsafe" not in csp, csp)
    sign_in(console, *PHARMACY)
    console.get_by_role("heading", name="Incoming orders").wait_for(timeout=WAIT_MS)
    wait_js(console, "() => document.getElementById('connection').dataset.state === 'live'")
    check(console.locator("#account-name").inner_text() == "Corner Pharmacy", "signed in as the pharmacy")

    step("the console registers a driver")
    console.get_by_role("link", name="Drivers").click()
    form = console.locator("#register-driver")
    form.get_by_label("Full name").fill("Dee Driverson")
    form.get_by_label("E-mail").fill(DRIVER[0])
    form.get_by_label("Password").fill(DRIVER[1])
    form.get_by_label("Vehicle", exact=True).select_option("bike")
    form.get_by_role("button", name="Register driver").click()
    console.locator("#drivers tr", has_text="Dee Driverson").wait_for(timeout=WAIT_MS)
    driver_id = console.locator("#drivers tr", has_text="Dee Driverson").get_attribute("data-driver-id")
    shot(console, "console-drivers")

    step("the driver signs in on a phone, with a mocked position, and goes available")
    driver_ctx = new_context(browser, PHONE, permissions=["geolocation"],
                             geolocation={"latitude": PICKUP[0], "longitude": PICKUP[1], "accuracy": 8})
    driver = watch.attach(driver_ctx.new_page())
    response = driver.goto(server.base + "/driver")
    check("geolocation=(self)" in response.headers.get("permissions-policy", ""), "driver app may use geolocation")
    sign_in(driver, *DRIVER)
    driver.get_by_role("button", name="Go available").click()
    wait_js(driver, "() => document.getElementById('duty-status').dataset.status === 'available'")
    wait_js(driver, "() => document.getElementById('connection').dataset.state === 'live'")
    check_accessible(driver, "driver app")
    shot(driver, "driver-available")

    step("an order arrives live in the console; it is accepted and assigned")
    console.get_by_role("link", name="Orders").click()
    order = api(server, "POST", "/orders", {
        "vendor_id": vendor_id, "delivery_address": "Torstrasse 1, Berlin",
        "delivery_latitude": DESTINATION[0], "delivery_longitude": DESTINATION[1],
        "customer_name": "Ann Patient", "customer_phone": "+49 30 555 0199",
        "items": [{"name": "Amoxicillin 500 mg", "quantity": 1}]}, token=customer)
    order_id = order["id"]
    wait_order_status(console, order_id, "pending")
    check(console.locator("#incoming").get_by_text(order["order_number"]).count() == 1, "incoming order listed")
    order_item(console, order_id).get_by_role("button", name="Accept").click()
    wait_order_status(console, order_id, "accepted")
    # The driver shares its position: the fleet map shows it at the pharmacy.
    wait_js(console, "id => !!document.getElementById('driver-' + id)", driver_id)
    order_item(console, order_id).get_by_label(f"Driver for {order['order_number']}").select_option(driver_id)
    order_item(console, order_id).get_by_role("button", name="Assign driver").click()
    wait_order_status(console, order_id, "driver_assigned")
    shot(console, "console-assigned")

    step("the assignment reaches the driver live: accept, pick up")
    driver.get_by_role("button", name="Accept").wait_for(timeout=WAIT_MS)
    check(driver.locator("#job-number").inner_text() == order["order_number"], "the assigned order")
    check("Ann Patient" in driver.locator("#job-recipient").inner_text(), "recipient shown to the driver")
    check(re.fullmatch(r"\d{6}", order["handover_code"]), "the customer sees the handover code")
    check(order["handover_code"] not in driver.content(), "no handover code in the driver app")
    driver.get_by_role("button", name="Accept").click()
    driver.get_by_role("button", name="Picked up").click()
    wait_order_status(console, order_id, "picked_up")

    step("the driver moves: the console's fleet map follows")
    before = driver_marker(console, driver_id)
    check(before and before["lat"] == str(PICKUP[0]), f"driver marker at the pharmacy: {before}")
    driver_ctx.set_geolocation({"latitude": 52.5252, "longitude": 13.4080, "accuracy": 8})
    wait_js(console, "id => { const m = document.getElementById('driver-' + id); return m && m.getAttribute('data-lat') === '52.5252'; }",
            driver_id)
    after = driver_marker(console, driver_id)
    check(after["transform"] != before["transform"], "the marker moved on screen")
    check(console.locator("#fleet-tiles image").count() == 0, "no tiles without MEDEX_TILE_URL")
    check(console.locator("#fleet-map .grid-line").count() == 1, "the plain SVG plot")
    sent = [json.loads(f) for f in watch.frames_sent]
    check(any(f.get("type") == "location" and "recorded_at" in f for f in sent), f"location frames: {sent[-3:]}")
    shot(console, "console-driver-moving")

    step("out for delivery; a first attempt fails with a reason")
    driver.get_by_role("button", name="Out for delivery").click()
    wait_order_status(console, order_id, "out_for_delivery")
    driver_ctx.set_geolocation({"latitude": 52.5286, "longitude": 13.4018, "accuracy": 8})
    wait_js(console, "id => { const m = document.getElementById('driver-' + id); return m && m.getAttribute('data-lat') === '52.5286'; }",
            driver_id)
    driver.get_by_text("Could not deliver?").click()
    driver.get_by_label("Reason").select_option("recipient_absent")
    driver.get_by_role("button", name="Failed").click()
    driver.get_by_role("button", name="Out for delivery again").wait_for(timeout=WAIT_MS)
    wait_order_status(console, order_id, "failed")
    shot(driver, "driver-failed")

    step("the pharmacy confirms the return, starts a new attempt and assigns again")
    order_item(console, order_id).get_by_role("button", name="Confirm return").click()
    wait_order_status(console, order_id, "returned")
    order_item(console, order_id).get_by_role("button", name="New attempt").click()
    wait_order_status(console, order_id, "accepted")
    wait_js(driver, "() => document.getElementById('job').hidden")
    wait_js(driver, "() => document.getElementById('duty-status').dataset.status === 'available'")
    select = order_item(console, order_id).get_by_label(f"Driver for {order['order_number']}")
    wait_js(console, "([id, d]) => !!document.querySelector(`li.order[data-order-id='${id}'] option[value='${d}']`)",
            [order_id, driver_id])
    select.select_option(driver_id)
    order_item(console, order_id).get_by_role("button", name="Assign driver").click()
    wait_order_status(console, order_id, "driver_assigned")

    step("the driver declines once; the pharmacy assigns again")
    driver.get_by_role("button", name="Decline").click()
    driver.get_by_label("Why decline? (optional)").fill("flat tyre, fixed in a minute")
    driver.get_by_role("button", name="Confirm decline").click()
    wait_order_status(console, order_id, "accepted")
    wait_js(driver, "() => document.getElementById('job').hidden")
    wait_js(console, "([id, d]) => !!document.querySelector(`li.order[data-order-id='${id}'] option[value='${d}']`)",
            [order_id, driver_id])
    select.select_option(driver_id)
    order_item(console, order_id).get_by_role("button", name="Assign driver").click()
    wait_order_status(console, order_id, "driver_assigned")

    step("second attempt: accept, pick up, out for delivery")
    driver.get_by_role("button", name="Accept").click()
    driver.get_by_role("button", name="Picked up").click()
    driver.get_by_role("button", name="Out for delivery").click()
    wait_order_status(console, order_id, "out_for_delivery")

    step("delivered with a photo, a signature and the handover code (a wrong one first)")
    code = api(server, "GET", f"/orders/{order_id}", token=customer)["handover_code"]
    check(re.fullmatch(r"\d{6}", code or ""), f"handover code {code!r}")
    driver.locator("#photo").set_input_files({"name": "door.png", "mimeType": "image/png", "buffer": png()})
    wait_js(driver, "() => { const i = document.getElementById('photo-preview'); return !i.hidden && i.complete && i.naturalWidth > 0; }")
    driver.locator("#signature").scroll_into_view_if_needed()
    box = driver.locator("#signature").bounding_box()
    driver.mouse.move(box["x"] + 20, box["y"] + box["height"] * 0.6)
    driver.mouse.down()
    for i in range(1, 12):
        driver.mouse.move(box["x"] + 20 + i * (box["width"] - 40) / 11,
                          box["y"] + box["height"] * (0.6 - 0.3 * (i % 2)), steps=2)
    driver.mouse.up()
    wrong = "000000" if code != "000000" else "111111"
    driver.get_by_label("Handover code from the recipient").fill(wrong)
    driver.get_by_role("button", name="Delivered").click()
    driver.get_by_text("That code does not match").wait_for(timeout=WAIT_MS)
    driver.get_by_label("Handover code from the recipient").fill(code)
    driver.get_by_role("button", name="Delivered").click()
    wait_js(driver, "() => document.getElementById('job').hidden")
    wait_order_status(console, order_id, "delivered")
    delivered = api(server, "GET", f"/orders/{order_id}", token=vendor_token)
    kinds = sorted(p["kind"] for p in delivered["proofs"])
    check(kinds[:1] == ["photo"] and "signature" in kinds, f"proofs {kinds}")
    check(delivered["attempt"] == 2, f"attempt {delivered['attempt']}")
    wait_js(driver, "() => /^\\d+\\.\\d\\d$/.test(document.getElementById('earnings-total')?.textContent || '')")
    check_accessible(driver, "driver app after delivery")
    watch.assert_clean(driver, "driver app", expected=["status of 422"])
    shot(driver, "driver-delivered")

    step("the console's order page: custody record verified, proofs shown")
    console.goto(f"{server.base}/console#/orders/{order_id}")
    console.locator("#custody-verified.verified").wait_for(timeout=WAIT_MS)
    steps = console.locator("#custody li").evaluate_all("els => els.map(e => e.dataset.step)")
    for wanted in ["pending", "accepted", "driver_assigned", "picked_up", "out_for_delivery", "failed", "returned", "delivered"]:
        check(wanted in steps, f"{wanted} missing from the custody record {steps}")
    check("recipient absent" in console.locator("#custody").inner_text(), "the failure reason on the record")
    wait_js(console, "() => { const imgs = document.querySelectorAll('img.proof'); return imgs.length >= 2 && Array.from(imgs).every(i => i.complete && i.naturalWidth > 0); }")
    check_accessible(console, "console order page")
    shot(console, "console-order")

    step("the daily report: figures, chart, CSV download")
    console.get_by_role("link", name="Report").click()
    console.locator("#report-figures").wait_for(timeout=WAIT_MS)
    figures = console.locator("#report-figures .figure").evaluate_all(
        "els => Object.fromEntries(els.map(e => [e.querySelector('dt').textContent, e.querySelector('dd').textContent]))")
    check(figures.get("Delivered") == "1" and figures.get("Failed attempts") == "1" and figures.get("Returns") == "1"
          and figures.get("Orders created") == "1", figures)
    check(console.locator("#report-chart rect.bar-delivered").count() == 7, "seven days in the chart")
    with console.expect_download() as info:
        console.get_by_role("button", name="Download CSV").click()
    download = info.value
    path = os.path.join(ARTIFACTS, download.suggested_filename)
    download.save_as(path)
    with open(path) as f:
        csv_text = f.read()
    check(download.suggested_filename.endswith(".csv") and "," in csv_text, f"CSV {download.suggested_filename}: {csv_text[:200]!r}")
    check_accessible(console, "console report")
    shot(console, "console-report")

    # Access tokens last a minute: the scenario goes on with a fresh one.
    vendor_token = run_of_three(server, watch, console, driver, vendor_token, vendor_id, customer, driver_id)

    step("the driver app survives a reload: still signed in, still on duty")
    driver.reload()
    wait_js(driver, "() => document.getElementById('duty-status').dataset.status === 'available'")
    wait_js(driver, "() => document.getElementById('connection').dataset.state === 'live'")

    step("and a server restart: positions taken meanwhile are sent late as one batch")
    server.stop()
    wait_js(driver, "() => document.getElementById('connection').dataset.state !== 'live'", timeout=10_000)
    frames_before = len(watch.frames_sent)
    for lat, lon in [(52.5230, 13.4110), (52.5240, 13.4100), (52.5250, 13.4090)]:
        driver_ctx.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 8})
        driver.wait_for_timeout(4500)  # one position per 4 s tick, kept while the server is down
    wait_js(driver, "() => /kept until the connection is back/.test(document.getElementById('location-line').textContent)")
    server.start()
    wait_js(driver, "() => document.getElementById('connection').dataset.state === 'live'", timeout=60_000)
    wait_js(console, "() => document.getElementById('connection').dataset.state === 'live'", timeout=60_000)
    deadline = time.time() + 15
    batch = None
    while time.time() < deadline and not batch:
        for f in watch.frames_sent[frames_before:]:
            message = json.loads(f)
            if message.get("type") == "locations":
                batch = message
        driver.wait_for_timeout(200)
    check(batch and len(batch["fixes"]) >= 3 and all("recorded_at" in f for f in batch["fixes"]),
          f"the kept positions as one batch: {batch}")
    stamps = [f["recorded_at"] for f in batch["fixes"]]
    check(stamps == sorted(stamps), f"oldest first: {stamps}")
    latest = api(server, "GET", f"/drivers/{driver_id}", token=vendor_token)
    check(abs(latest["current_latitude"] - 52.5250) < 1e-9, f"the newest fix is the position: {latest['current_latitude']}")
    # The browser logged the refused connections while the server was down.
    watch.assert_clean(driver, "driver app after the restart",
                       expected=["WebSocket connection", "ERR_CONNECTION_REFUSED", "net::ERR"])
    watch.errors.clear()

    step(f"the apps refreshed their one-minute access tokens on the way ({watch.refreshes} refreshes)")
    # One came from the driver app's reload; the others from tokens running out while in use.
    check(watch.refreshes >= 2, f"only {watch.refreshes} refreshes")

    step("two console tabs reloading at once stay signed in (refreshes are serialised)")
    second = watch.attach(console_ctx.new_page())
    second.goto(server.base + "/console#/orders")
    second.get_by_role("heading", name="Incoming orders").wait_for(timeout=WAIT_MS)
    console.goto(server.base + "/console#/orders")
    second.evaluate("() => location.reload()")
    console.evaluate("() => location.reload()")
    for tab in (console, second):
        tab.get_by_role("heading", name="Incoming orders").wait_for(timeout=WAIT_MS)
        wait_js(tab, "() => document.getElementById('connection').dataset.state === 'live'")
    second.close()
    watch.assert_clean(console, "console", expected=["WebSocket connection", "net::ERR"])

    step("API keys and webhooks in the console")
    console.get_by_role("link", name="Webhooks & API keys").click()
    console.get_by_label("Key name").fill("Shop backend")
    console.get_by_role("button", name="Create API key").click()
    key = console.locator("#secret-once").input_value()
    check(key.startswith("mdx_"), f"API key {key[:6]}…")
    console.get_by_role("button", name="Done").click()
    me = api(server, "GET", "/auth/me", token=key)
    check(me["vendor_id"] == vendor_id, "the key acts as the pharmacy")
    console.get_by_role("button", name="Revoke Shop backend").click()
    console.get_by_text("No API keys.").wait_for(timeout=WAIT_MS)
    api(server, "GET", "/auth/me", token=key, expect=(401,))
    console.get_by_label("Endpoint URL").fill(f"http://127.0.0.1:{server.port}/hooks/medex")
    console.get_by_role("button", name="Add webhook").click()
    check(console.locator("#secret-once").input_value() != "", "webhook secret shown once")
    console.get_by_role("button", name="Done").click()
    console.locator("#webhooks li").wait_for(timeout=WAIT_MS)
    check(len(api(server, "GET", f"/vendors/{vendor_id}/webhooks", token=vendor_token)) == 1, "one webhook")
    shot(console, "console-integrations")
    watch.assert_clean(console, "console", expected=["WebSocket connection", "net::ERR", "status of 401"])
    refresh_token = console.evaluate("() => localStorage.getItem('medex.console.refresh_token')")
    check(refresh_token, "the console keeps its refresh token")
    console.get_by_role("button", name="Sign out").click()
    console.get_by_role("heading", name="Sign in to the console").wait_for(timeout=WAIT_MS)
    check(console.evaluate("() => localStorage.getItem('medex.console.refresh_token')") is None, "forgotten")
    api(server, "POST", "/auth/refresh", {"refresh_token": refresh_token}, expect=(401,))
    console_ctx.close()

    step("an admin deactivates an account and changes the configuration (phone width)")
    admin_ctx = new_context(browser, PHONE)
    admin = watch.attach(admin_ctx.new_page())
    admin.goto(server.base + "/console")
    # By keyboard alone: the form is reachable and submits with Enter.
    admin.get_by_label("E-mail").focus()
    admin.keyboard.type(ADMIN[0])
    admin.keyboard.press("Tab")
    check(admin.evaluate("() => document.activeElement.id") == "login-password", "Tab moves to the password")
    admin.keyboard.type(ADMIN[1])
    admin.keyboard.press("Enter")
    admin.get_by_role("link", name="Users").wait_for(timeout=WAIT_MS)
    admin.get_by_role("link", name="Users").click()
    admin.get_by_role("button", name=f"Deactivate {CUSTOMER[0]}").click()
    admin.get_by_role("dialog").get_by_role("button", name="Deactivate").click()
    admin.locator(f"tr[data-email='{CUSTOMER[0]}']", has_text="Deactivated").wait_for(timeout=WAIT_MS)
    login(server, *CUSTOMER, expect=(401, 403))
    api(server, "GET", "/auth/me", token=customer, expect=(401, 403))
    check_accessible(admin, "console users, 390 px")
    shot(admin, "console-admin-users")
    admin.get_by_role("link", name="Configuration").click()
    admin.get_by_label("Road factor").fill("1.4")
    admin.get_by_role("button", name="Save configuration").click()
    admin.get_by_text("Configuration saved.").wait_for(timeout=WAIT_MS)
    admin_token = login(server, *ADMIN)["access_token"]
    check(api(server, "GET", "/admin/config", token=admin_token)["road_factor"] == 1.4, "road factor saved")
    admin.get_by_role("link", name="Orders").click()
    admin.locator(f"li.order[data-order-id='{order_id}']").wait_for(timeout=WAIT_MS)
    check_accessible(admin, "console orders, 390 px")
    shot(admin, "console-admin-orders-phone")
    watch.assert_clean(admin, "admin console")
    admin_ctx.close()

    step("a pharmacy account cannot use the driver app")
    other = watch.attach(new_context(browser, PHONE).new_page())
    other.goto(server.base + "/driver")
    sign_in(other, *PHARMACY)
    other.get_by_text("cannot use this app").wait_for(timeout=WAIT_MS)
    watch.assert_clean(other, "driver app, wrong role")
    other.context.close()

    step("with MEDEX_TILE_URL set: the fleet map loads tiles under the policy")
    tiles = TileServer()
    try:
        server.stop()
        server.extra_env = {"MEDEX_TILE_URL": f"http://127.0.0.1:{tiles.port}/{{z}}/{{x}}/{{y}}.png",
                            "MEDEX_TILE_ATTRIBUTION": "Map tiles: local test server"}
        server.start()
        watch.allowed = [f"http://127.0.0.1:{tiles.port}/"]
        wait_js(driver, "() => document.getElementById('connection').dataset.state === 'live'", timeout=60_000)
        page = watch.attach(new_context(browser, DESKTOP).new_page())
        response = page.goto(server.base + "/console")
        check(f"http://127.0.0.1:{tiles.port}" in response.headers.get("content-security-policy", ""), "tile host in img-src")
        sign_in(page, *PHARMACY)
        wait_js(page, "id => !!document.getElementById('driver-' + id)", driver_id)
        wait_js(page, "() => document.querySelectorAll('#fleet-tiles image').length > 0")
        deadline = time.time() + 10
        while not tiles.requests and time.time() < deadline:
            time.sleep(0.1)
        check(tiles.requests, "the browser fetched no tiles")
        check(page.get_by_text("Map tiles: local test server").count() == 1, "tile attribution")
        page.wait_for_timeout(500)
        shot(page, "console-with-tiles")
        watch.assert_clean(page, "console with tiles")
        page.context.close()
    finally:
        tiles.close()
    driver_ctx.close()


RUN_STOPS = [("Invalidenstrasse 50, Berlin", 52.5310, 13.3790),
             ("Warschauer Strasse 30, Berlin", 52.5080, 13.4490),
             ("Schoenhauser Allee 80, Berlin", 52.5450, 13.4130)]


def dropoffs_shown(page):
    return page.locator("#run-stops li[data-kind='dropoff']").evaluate_all("els => els.map(e => e.dataset.orderId)")


def dropoffs_planned(server, token, driver_id):
    return [s["order_id"] for s in api(server, "GET", f"/drivers/{driver_id}/run", token=token)["stops"]
            if s["kind"] == "dropoff"]


def wait_planned(server, token, driver_id, wanted, what):
    deadline = time.time() + WAIT_MS / 1000
    while time.time() < deadline:
        planned = dropoffs_planned(server, token, driver_id)
        if planned == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: the run answers {planned}, not {wanted}")


def run_of_three(server, watch, console, driver, vendor_token, vendor_id, customer, driver_id):
    """A pharmacy's run of three orders (DESIGN §14): seen and reordered in the console, the next
    stop in the driver app. Ends with the three cancelled and the driver available again; answers a
    new access token of the pharmacy."""
    started = time.time()
    step("a run of three: the pharmacy allows three orders a driver, assigns three, the driver accepts them")
    api(server, "PATCH", f"/vendors/{vendor_id}", {"max_active_orders": 3}, token=vendor_token)
    # Back at the pharmacy: the run starts with its pickups.
    driver.context.set_geolocation({"latitude": PICKUP[0], "longitude": PICKUP[1], "accuracy": 8})
    ids, numbers = [], {}
    for i, (address, lat, lon) in enumerate(RUN_STOPS):
        body = {"vendor_id": vendor_id, "delivery_address": address, "delivery_latitude": lat,
                "delivery_longitude": lon, "customer_name": f"Run Customer {i + 1}",
                "customer_phone": "+49 30 555 0199", "items": [{"name": "Ibuprofen 400 mg", "quantity": 1}]}
        if i == 1:  # one with a window, shown beside its ETA
            body["deliver_before"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 3600))
        o = api(server, "POST", "/orders", body, token=customer)
        api(server, "PATCH", f"/orders/{o['id']}", {"status": "accepted"}, token=vendor_token)
        ids.append(o["id"])
        numbers[o["id"]] = o["order_number"]
    console.get_by_role("link", name="Orders").click()
    api(server, "POST", f"/orders/{ids[0]}/assign-driver", {"driver_id": driver_id}, token=vendor_token)
    # The console offers the busy driver for the second: its run has room.
    wait_js(console, "([id, d]) => !!document.querySelector(`li.order[data-order-id='${id}'] option[value='${d}']`)",
            [ids[1], driver_id])
    order_item(console, ids[1]).get_by_label(f"Driver for {numbers[ids[1]]}").select_option(driver_id)
    order_item(console, ids[1]).get_by_role("button", name="Assign driver").click()
    wait_order_status(console, ids[1], "driver_assigned")
    api(server, "POST", f"/orders/{ids[2]}/assign-driver", {"driver_id": driver_id}, token=vendor_token)
    for _ in ids:
        # Each assignment waits in the delivery panel for Accept, one after the other.
        driver.locator("#offer:not([hidden])").wait_for(timeout=WAIT_MS)
        number = driver.locator("#job-number").inner_text()
        driver.get_by_role("button", name="Accept").click()
        wait_js(driver, "n => document.getElementById('offer').hidden || document.getElementById('job-number').textContent !== n", number)
    for i in ids:
        check(api(server, "GET", f"/orders/{i}", token=vendor_token)["driver_accepted_at"], f"{numbers[i]} accepted")
    deadline = time.time() + WAIT_MS / 1000
    while api(server, "GET", f"/drivers/{driver_id}", token=vendor_token)["current_latitude"] != PICKUP[0]:
        check(time.time() < deadline, "the driver's position at the pharmacy")
        time.sleep(0.2)

    step("the console shows the run: a pickup, three drop-offs in sequence, on the map")
    console.get_by_role("button", name="Show run of Dee Driverson").click()
    wait_js(console, "() => document.querySelectorAll('#run-stops li[data-kind=dropoff]').length === 3")
    planned = dropoffs_planned(server, vendor_token, driver_id)
    check(dropoffs_shown(console) == planned and sorted(planned) == sorted(ids), f"shown {dropoffs_shown(console)}, planned {planned}")
    check(console.locator("#run-stops li").first.get_attribute("data-kind") == "pickup", "the pickup comes first")
    check(re.search(r"4 stops · \d+\.\d km · \d+ min", console.locator("#run-totals").inner_text()),
          console.locator("#run-totals").inner_text())
    etas = console.locator("#run-stops .stop-eta").all_inner_texts()
    check(len(etas) == 4 and all(re.search(r"\d\d:\d\d \(in \d+ min\)", e) for e in etas), f"ETAs {etas}")
    check("window by " in console.locator(f"#run-stops li[data-order-id='{ids[1]}']").inner_text(), "the window is shown")
    check(console.locator("#fleet-markers .stop-marker").count() == 4, "four numbered stops on the map")
    check(console.locator("#run-stop-2 .stop-number").text_content() == "2", "numbered")
    check(console.locator("#fleet-route polyline#run-line").get_attribute("points").count(",") == 5,
          "a line from the driver through the four stops")
    check_accessible(console, "console run")
    shot(console, "console-run")
    console.set_viewport_size(PHONE)
    console.locator("#run").scroll_into_view_if_needed()
    check_accessible(console, "console run, 390 px")
    console.screenshot(path=os.path.join(ARTIFACTS, "console-run-phone.png"))
    console.set_viewport_size(DESKTOP)

    step("the pharmacy drags the last drop-off to the front: the run keeps that order")
    first, last = planned[0], planned[-1]
    console.locator(f"#run-stops li[data-order-id='{last}']").drag_to(
        console.locator(f"#run-stops li[data-order-id='{first}']"), target_position={"x": 40, "y": 4})
    wanted = [last] + planned[:-1]
    wait_planned(server, vendor_token, driver_id, wanted, "after the drag")
    wait_js(console, "() => /fixed by hand/.test(document.getElementById('run-totals').textContent)")
    check(dropoffs_shown(console) == wanted, f"shown {dropoffs_shown(console)}")

    step("and by keyboard: Move down puts it back second")
    console.get_by_role("button", name=f"Move down {numbers[last]}").focus()
    console.keyboard.press("Enter")
    wanted = [wanted[1], last, wanted[2]]
    wait_planned(server, vendor_token, driver_id, wanted, "after Move down")
    wait_js(console, "w => JSON.stringify(Array.from(document.querySelectorAll('#run-stops li[data-kind=dropoff]')).map(e => e.dataset.orderId)) === w",
            json.dumps(wanted, separators=(",", ":")))
    check(console.evaluate("() => document.activeElement.dataset.action") == f"down-{last}", "focus stays on the button")

    step("a refused change shows the server's message and the order before it")
    # The one answer not from the server: a conflict is hard to time between two real requests.
    def refuse(route):
        if route.request.method == "PUT":
            route.fulfill(status=409, content_type="application/json",
                          body=json.dumps({"code": "concurrent_update", "detail": "The driver changed meanwhile; try again"}))
        else:
            route.continue_()
    console.route("**/api/drivers/*/run", refuse)
    console.get_by_role("button", name=f"Move up {numbers[last]}").click()
    console.get_by_text("The driver changed meanwhile; try again").wait_for(timeout=WAIT_MS)
    check(dropoffs_shown(console) == wanted, f"restored: {dropoffs_shown(console)}")
    console.unroute("**/api/drivers/*/run")
    watch.assert_clean(console, "console run", expected=["status of 409"])

    step("the driver app shows the next stop and the stops left")
    wait_js(driver, "() => !document.getElementById('next-stop').hidden")
    check(driver.locator("#next-what").inner_text().startswith("Pick up "), driver.locator("#next-what").inner_text())
    check(all(numbers[i] in driver.locator("#next-what").inner_text() for i in ids), "one pickup for the three")
    check(driver.locator("#next-where").inner_text() == "Alexanderplatz 1, Berlin", driver.locator("#next-where").inner_text())
    check(re.match(r"ETA (\d{1,2} \w{3}, )?\d\d:\d\d", driver.locator("#next-eta").inner_text()), driver.locator("#next-eta").inner_text())
    check(driver.locator("#stops-left").inner_text() == "4 stops left in your run", driver.locator("#stops-left").inner_text())

    step("picking one up moves the next stop on; cancelling the run frees the driver")
    before = driver.locator("#next-what").inner_text()
    picked = driver.locator("#job-number").inner_text()
    check(picked in before, f"the delivery panel shows {picked}, of the next stop")
    driver.get_by_role("button", name="Picked up").click()
    wait_js(driver, "t => document.getElementById('next-what').textContent !== t", before)
    stops = api(server, "GET", f"/drivers/{driver_id}/run", token=vendor_token)["stops"]
    places = [(s["kind"], s["latitude"], s["longitude"]) for s in stops]
    # Consecutive pickups at one place are one stop.
    left = len([p for i, p in enumerate(places) if p[0] == "dropoff" or i == 0 or places[i - 1] != p])
    check(numbers[stops[0]["order_id"]] in driver.locator("#next-what").inner_text(),
          f"next stop {driver.locator('#next-what').inner_text()!r}, the run's first {stops[0]}")
    check(driver.locator("#stops-left").inner_text() == f"{left} stops left in your run", driver.locator("#stops-left").inner_text())
    check_accessible(driver, "driver app, next stop")
    shot(driver, "driver-next-stop")
    # The pickup reached the console over its socket: the run there was read again.
    wait_js(console, "n => document.querySelectorAll('#run-stops li').length === n", left)
    for i in ids:
        status = api(server, "GET", f"/orders/{i}", token=vendor_token)["status"]
        if status == "picked_up":  # a pharmacy cancels only before pickup; the driver hands it back
            api(server, "PATCH", f"/orders/{i}", {"status": "cancelled", "reason": "test run over"},
                token=login(server, *ADMIN)["access_token"])
        else:
            api(server, "PATCH", f"/orders/{i}", {"status": "cancelled", "reason": "test run over"}, token=vendor_token)
    wait_js(driver, "() => document.getElementById('next-stop').hidden && document.getElementById('job').hidden")
    wait_js(driver, "() => document.getElementById('duty-status').dataset.status === 'available'")
    wait_js(console, "() => /No stops ahead/.test(document.getElementById('run-totals').textContent)")
    console.get_by_role("button", name="Close").click()
    watch.assert_clean(driver, "driver app, run")
    step(f"the run took {time.time() - started:.1f} s")
    return login(server, *PHARMACY)["access_token"]


def main():
    if not os.path.exists(CHROMIUM):
        skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MEDEX_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("the Python package playwright is not installed (pip install playwright)")
    binary = os.environ.get("MEDEX_SERVER_BIN")
    if not binary or not os.path.isfile(binary):
        print("FAILED: set MEDEX_SERVER_BIN to the server binary (cargo build --example server; "
              "target/debug/examples/server)")
        return 2
    binary = os.path.abspath(binary)
    os.makedirs(ARTIFACTS, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="medex-console-")
    server = Server(binary, data_dir)
    if os.path.exists(server.log_path):
        os.remove(server.log_path)
    print(f"console and driver app browser test: {binary}")
    failed = False
    try:
        server.create_admin(*ADMIN)
        server.start()
        print(f"  server on {server.base}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                run(browser, server)
            except Exception:
                failed = True
                traceback.print_exc()
                for context in browser.contexts:
                    for i, page in enumerate(context.pages):
                        try:
                            shot(page, f"failure-{id(context)}-{i}")
                        except Exception:
                            pass
            finally:
                browser.close()
    except Exception:
        failed = True
        traceback.print_exc()
    finally:
        server.stop()
        if failed:
            print("server log (tail):\n" + server.log_tail())
        shutil.rmtree(data_dir, ignore_errors=True)
    print("FAILED: console and driver app browser test" if failed else "PASSED: console and driver app browser test")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
