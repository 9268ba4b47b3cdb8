#!/usr/bin/env python3
"""End-to-end test of the public tracking page (GET /track/{token}) in headless Chromium.

    MEDEX_SERVER_BIN=target/debug/examples/server python3 tests/browser/test_tracking_page.py

Starts the server binary named by MEDEX_SERVER_BIN on a free port with a temporary data
directory, sets up a pharmacy, a driver, a customer and an order over the HTTP API, opens the
tracking page in Chromium and drives the delivery: the driver moves over /ws/driver, the status
changes over HTTP, the server restarts once, the first attempt fails at the door and the driver
tries again. It checks that the page follows without a reload (status, ETA, driver marker,
live/reconnecting state), that a failed attempt reads "will be rescheduled" with no reason and
no driver, that it runs under its Content-Security-
Policy without violations, that a delivered order shows its final state without the driver, and
that an unknown token gets the friendly 404 page. Screenshots go to tests/artifacts/.

Needs Chromium (/usr/bin/chromium, or MEDEX_CHROMIUM) and the Python packages `playwright` and
`websockets`. Without them it prints "SKIPPED: <reason>" and exits 0, unless
MEDEX_REQUIRE_BROWSER_TEST=1, which turns a skip into a failure. Exits non-zero on any failure.
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
CHROMIUM = os.environ.get("MEDEX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 820}
WAIT_MS = 15_000

PICKUP = (52.5219, 13.4132)  # the pharmacy
DESTINATION = (52.5290, 13.4010)
CUSTOMER_NAME = "Ann Patient"
CUSTOMER_PHONE = "+49 30 555 0199"
DELIVERY_ADDRESS = "Torstrasse 1, Berlin"


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir, port):
        self.binary = binary
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(ARTIFACTS, "server.log")
        self.process = None
        self.extra_env = {}

    def start(self):
        env = dict(os.environ)
        env.update(
            MEDEX_DATA_DIR=self.data_dir,
            MEDEX_ADDR=f"127.0.0.1:{self.port}",
            MEDEX_ADMIN_EMAIL="admin@example.com",
            MEDEX_ADMIN_PASSWORD="admin-password-1",
            MEDEX_WS_MIN_FIX_INTERVAL_MS="0",
            MEDEX_LOG=env.get("MEDEX_LOG", "warn"),
            MEDEX_SHUTDOWN_GRACE_SECS="2",
            NO_COLOR="1",
        )
        env.pop("MEDEX_TILE_URL", None)  # the page must work with no tile server
        env.pop("MEDEX_TILE_ATTRIBUTION", None)
        env.update(self.extra_env)
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [self.binary], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir
        )
        log.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not answer /api/health within 60 s")

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


def api(server, method, path, body=None, token=None, expect=(200, 201)):
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


def login(server, email, password):
    return api(server, "POST", "/auth/login", {"email": email, "password": password})["access_token"]


class World:
    """A pharmacy with one driver (on a bike), and a customer."""

    def __init__(self, server):
        self.server = server
        api(server, "POST", "/vendors/register", {
            "email": "owner@pharmacy.example", "password": "pharmacy-pass-1",
            "business_name": "Corner Pharmacy", "phone": "+49 30 555 0100",
            "address": "Alexanderplatz 1, Berlin", "latitude": PICKUP[0], "longitude": PICKUP[1],
        })
        self.vendor = login(server, "owner@pharmacy.example", "pharmacy-pass-1")
        self.vendor_id = api(server, "GET", "/auth/me", token=self.vendor)["vendor_id"]
        self.driver_id = api(server, "POST", "/drivers/register", {
            "email": "dee@pharmacy.example", "password": "driver-pass-1",
            "full_name": "Dee Driverson", "phone": "+49 30 555 0101", "vehicle_type": "bike",
        }, token=self.vendor)["driver_id"]
        self.driver = login(server, "dee@pharmacy.example", "driver-pass-1")
        api(server, "PATCH", f"/drivers/{self.driver_id}/status", {"status": "available"}, token=self.driver)
        self.customer = api(server, "POST", "/auth/register", {
            "email": "ann@example.com", "password": "customer-pass-1", "full_name": CUSTOMER_NAME,
        })["access_token"]

    def order(self):
        order = api(self.server, "POST", "/orders", {
            "vendor_id": self.vendor_id, "delivery_address": DELIVERY_ADDRESS,
            "delivery_latitude": DESTINATION[0], "delivery_longitude": DESTINATION[1],
            "customer_name": CUSTOMER_NAME, "customer_phone": CUSTOMER_PHONE,
            "items": [{"name": "Amoxicillin 500 mg", "quantity": 1}],
        }, token=self.customer)
        return order

    def status(self, order, status, who=None):
        return api(self.server, "PATCH", f"/orders/{order['id']}", {"status": status},
                    token=who or self.driver)

    def dispatch(self, order):
        """Accepted, assigned, accepted by the driver, picked up."""
        self.status(order, "accepted", self.vendor)
        api(self.server, "POST", f"/orders/{order['id']}/assign-driver",
             {"driver_id": self.driver_id}, token=self.vendor)
        api(self.server, "POST", f"/orders/{order['id']}/assignment", {"action": "accept"},
             token=self.driver)
        self.status(order, "picked_up")


class DriverSocket:
    """The driver's app: /ws/driver, sending positions."""

    def __init__(self, server, token):
        from websockets.sync.client import connect

        # Entered as a context manager, which every version of `websockets` accepts.
        self.ws = connect(f"ws://127.0.0.1:{server.port}/ws/driver?token={token}",
                          open_timeout=10).__enter__()
        first = json.loads(self.ws.recv(timeout=10))
        check(first.get("type") == "connected", f"driver socket: expected connected, got {first}")

    def move(self, latitude, longitude):
        self.ws.send(json.dumps({"type": "location", "latitude": latitude, "longitude": longitude,
                                 "accuracy": 8, "speed": 4.0}))

    def close(self):
        try:
            self.ws.close()
        except Exception:  # already closed by a server restart
            pass


def png_tile():
    """A 256x256 PNG: a light fill with a darker edge, so tile seams show in screenshots."""
    rows = []
    for y in range(256):
        row = bytearray(b"\0")
        for x in range(256):
            row += b"\xc9\xd6\xdf" if x == 0 or y == 0 else b"\xe6\xed\xe4"
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


class TileServer:
    """A local stand-in for a tile provider, counting the tiles asked for."""

    def __init__(self):
        tile = png_tile()
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
# The page


INIT_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def new_page(browser, viewport, sockets=None):
    context = browser.new_context(viewport=viewport, device_scale_factor=2 if viewport is PHONE else 1,
                                  locale="en-GB", timezone_id="Europe/Berlin",
                                  is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    page = context.new_page()
    page.add_init_script(INIT_SCRIPT)
    errors = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    if sockets is not None:
        page.on("websocket", lambda ws: sockets.append(ws.url))
    page.errors = errors
    return page


def shot(page, name):
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    step(f"screenshot {os.path.relpath(path, ROOT)}")


def text(page, selector):
    return page.locator(selector).inner_text().strip()


def wait_text(page, selector, expected, timeout=WAIT_MS):
    page.wait_for_function(
        "([sel, want]) => { const el = document.querySelector(sel); return el && el.textContent.trim() === want; }",
        arg=[selector, expected], timeout=timeout)


def wait_state(page, state, timeout=WAIT_MS):
    page.wait_for_function(
        "want => document.getElementById('connection').getAttribute('data-state') === want",
        arg=state, timeout=timeout)


def marker(page):
    return page.evaluate("""() => {
      const m = document.getElementById('driver-marker');
      return m && { transform: m.getAttribute('transform'), lat: m.getAttribute('data-lat'),
                    lon: m.getAttribute('data-lon') };
    }""")


def wait_marker_change(page, before, timeout=WAIT_MS):
    page.wait_for_function(
        """old => { const m = document.getElementById('driver-marker');
                    return m && m.getAttribute('data-lat') !== old.lat
                      && m.getAttribute('transform') !== old.transform; }""",
        arg=before, timeout=timeout)


def assert_clean(page, where, expected_errors=()):
    violations = page.evaluate("window.__cspViolations")
    check(not violations, f"{where}: Content-Security-Policy violations: {violations}")
    errors = [e for e in page.errors if not any(x in e for x in expected_errors)]
    check(not errors, f"{where}: browser errors: {errors}")
    content = page.content()
    for secret in (CUSTOMER_NAME, CUSTOMER_PHONE, DELIVERY_ADDRESS, "Driverson", "555 0101"):
        check(secret not in content, f"{where}: the page shows {secret!r}")


# ------------------------------------------------------------------------------------------
# The scenario


def run(browser, server):
    world = World(server)
    order = world.order()
    token = order["tracking_token"]
    url = f"{server.base}/track/{token}"

    step("the served HTML carries no order data and a strict policy")
    with urllib.request.urlopen(url, timeout=10) as r:
        html = r.read().decode()
        csp = r.headers.get("content-security-policy", "")
        check(r.headers.get("referrer-policy") == "no-referrer", "Referrer-Policy")
        check(r.headers.get("cache-control") == "no-store", "Cache-Control")
    check("script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp, csp)
    for secret in (CUSTOMER_NAME, CUSTOMER_PHONE, order["order_number"], token):
        check(secret not in html, f"the served HTML contains {secret!r}")

    world.dispatch(order)
    driver = DriverSocket(server, world.driver)
    driver.move(*PICKUP)

    step("an order in transit: status, driver, ETA, marker, live")
    sockets = []
    page = new_page(browser, PHONE, sockets)
    response = page.goto(url)
    check(response.status == 200, f"page: HTTP {response.status}")
    page.evaluate("window.__loadedOnce = true")
    wait_state(page, "live")  # the WebSocket connected under connect-src 'self'
    wait_text(page, "#status", "Picked up")
    check(text(page, "#order-number") == order["order_number"], "order number")
    check(text(page, "#vendor") == "Corner Pharmacy", "pharmacy name")
    check(text(page, "#driver-name") == "Dee", f"driver first name: {text(page, '#driver-name')}")
    check(text(page, "#driver-vehicle") == "Bike", "vehicle type")
    page.wait_for_function("() => /\\d+ min$/.test(document.getElementById('eta').textContent)",
                           timeout=WAIT_MS)
    eta_before = text(page, "#eta")
    check(page.locator("#timeline li.done").count() >= 3, "timeline steps done")
    check(page.locator("#timeline li[data-step='picked_up'] time").inner_text().strip() != "",
          "time of the pickup on the timeline")
    check(page.locator("#pickup-marker").count() == 1 and page.locator("#destination-marker").count() == 1,
          "pickup and destination markers")
    at_pickup = marker(page)
    check(at_pickup and at_pickup["lat"] == str(PICKUP[0]), f"driver marker at the pickup: {at_pickup}")
    shot(page, "phone-picked-up")

    step("the status changes over the WebSocket, no reload")
    world.status(order, "out_for_delivery")
    wait_text(page, "#status", "On the way to you")
    check(page.locator("#timeline li[data-step='out_for_delivery']").get_attribute("class") == "step current",
          "timeline shows the current step")

    step("the driver moves: marker and ETA follow")
    path = [(52.5236, 13.4105), (52.5252, 13.4080), (52.5266, 13.4052), (52.5279, 13.4030),
            (52.5286, 13.4018)]
    for lat, lon in path:
        driver.move(lat, lon)
        time.sleep(0.15)
    page.wait_for_function(
        "want => { const m = document.getElementById('driver-marker'); return m && m.getAttribute('data-lat') === want; }",
        arg=str(path[-1][0]), timeout=WAIT_MS)
    check(marker(page)["transform"] != at_pickup["transform"], "the driver marker moved on screen")
    page.wait_for_function("old => document.getElementById('eta').textContent.trim() !== old",
                           arg=eta_before, timeout=WAIT_MS)
    eta_after = text(page, "#eta")
    step(f"ETA {eta_before!r} -> {eta_after!r}")
    check(page.locator("#trail").count() == 1, "the driver's trail is drawn")
    step("70 m from the door: the page says the driver is almost there")
    page.wait_for_function(
        "() => document.getElementById('status-detail').textContent.includes('almost at your door')",
        timeout=WAIT_MS)
    check(page.evaluate("window.__loadedOnce") is True, "the page was reloaded")
    shot(page, "phone-on-the-way")

    desktop = new_page(browser, DESKTOP)
    desktop.goto(url)
    wait_state(desktop, "live")
    wait_text(desktop, "#status", "On the way to you")
    desktop.wait_for_selector("#driver-marker", state="attached", timeout=WAIT_MS)
    desktop.wait_for_timeout(700)  # let the marker transition settle
    shot(desktop, "desktop-on-the-way")
    assert_clean(desktop, "desktop page")
    desktop.context.close()

    step("the server restarts: the page shows reconnecting, then live again")
    driver.close()
    opened = len(sockets)
    server.stop()
    wait_state(page, "reconnecting", timeout=10_000)
    check("Reconnecting" in text(page, "#connection-text") or "Offline" in text(page, "#connection-text"),
          f"reconnecting label: {text(page, '#connection-text')!r}")
    shot(page, "phone-reconnecting")
    server.start()
    wait_state(page, "live", timeout=45_000)
    check(len(sockets) > opened, "a new WebSocket was opened")
    page.errors.clear()  # the browser logged the refused connections while the server was down
    driver = DriverSocket(server, world.driver)
    before = marker(page)
    driver.move(52.5288, 13.4014)
    wait_marker_change(page, before)
    check(page.evaluate("window.__loadedOnce") is True, "the page was reloaded")

    step("a failed attempt: the page says it will be rescheduled, never why")
    note = "Mrs Miller next door says Ann is at St. Hedwig hospital"
    api(server, "PATCH", f"/orders/{order['id']}",
        {"status": "failed", "reason": "other", "note": note}, token=world.driver)
    wait_text(page, "#status", "Delivery attempt failed")
    check("rescheduled" in text(page, "#status-detail"),
          f"the detail says it will be rescheduled: {text(page, '#status-detail')!r}")
    check(page.locator("#timeline li[data-step='failed']").get_attribute("class") == "step current",
          "the failed attempt is the current step of the timeline")
    check(page.locator("#driver-marker").count() == 0, "no driver marker after a failed attempt")
    check(page.locator("#eta-box").is_hidden(), "no ETA after a failed attempt")
    content = page.content()
    for secret in (note, "Miller", "hospital", "recipient", "reason"):
        check(secret not in content, f"the page shows {secret!r} after a failed attempt")
    shot(page, "phone-attempt-failed")

    step("a second try on the same run: on its way again")
    world.status(order, "out_for_delivery")
    wait_text(page, "#status", "On the way to you")
    driver.move(52.5289, 13.4012)
    page.wait_for_selector("#driver-marker", state="attached", timeout=WAIT_MS)
    check(page.evaluate("window.__loadedOnce") is True, "the page was reloaded")

    step("delivered: final state, no driver, no reconnect")
    world.status(order, "delivered")
    wait_text(page, "#status", "Delivered")
    wait_state(page, "final")
    check(page.locator("#driver-marker").count() == 0, "no driver marker after delivery")
    check(page.locator("#trail").count() == 0, "no trail after delivery")
    check(page.locator("#eta-box").is_hidden() and page.locator("#driver-box").is_hidden(),
          "no ETA or driver after delivery")
    opened = len(sockets)
    page.wait_for_timeout(3500)
    check(len(sockets) == opened, "the page reconnected after the final status")
    check(page.get_attribute("#connection", "data-state") == "final", "still final")
    check(page.locator("#timeline li[data-step='delivered']").get_attribute("class") == "step done",
          "delivered step done")
    assert_clean(page, "phone page")
    shot(page, "phone-delivered-live")
    page.context.close()
    driver.close()

    step("a delivered order loaded afresh")
    sockets = []
    page = new_page(browser, PHONE, sockets)
    response = page.goto(url)
    check(response.status == 200, f"delivered page: HTTP {response.status}")
    wait_text(page, "#status", "Delivered")
    wait_state(page, "final")
    check(page.locator("#driver-marker").count() == 0, "no driver marker for a delivered order")
    check(page.locator("#destination-marker").count() == 0,
          "no destination marker once delivered: the link keeps the outcome, not the home")
    check(text(page, "#status-detail").startswith("Your order was delivered at"), text(page, "#status-detail"))
    page.wait_for_timeout(1500)
    check(not sockets, f"no WebSocket for a finished order: {sockets}")
    assert_clean(page, "delivered page")
    shot(page, "phone-delivered")
    page.context.close()

    step("an unknown token: the friendly 404 page")
    page = new_page(browser, PHONE)
    response = page.goto(f"{server.base}/track/this-token-does-not-exist")
    check(response.status == 404, f"unknown token: HTTP {response.status}")
    check(response.headers.get("content-type", "").startswith("text/html"), "404 is HTML")
    check(text(page, "h1") == "We could not find this delivery", text(page, "h1"))
    assert_clean(page, "404 page", expected_errors=["status of 404"])
    shot(page, "phone-not-found")
    page.context.close()

    step("with a tile layer configured: tiles load under the policy")
    tiles = TileServer()
    try:
        server.stop()
        server.extra_env = {
            "MEDEX_TILE_URL": f"http://127.0.0.1:{tiles.port}/{{z}}/{{x}}/{{y}}.png",
            "MEDEX_TILE_ATTRIBUTION": "Map tiles: local test server",
        }
        server.start()
        order = world.order()
        world.dispatch(order)
        world.status(order, "out_for_delivery")
        driver = DriverSocket(server, world.driver)
        for lat, lon in [(52.5225, 13.4120), (52.5240, 13.4098), (52.5256, 13.4074)]:
            driver.move(lat, lon)
            time.sleep(0.15)
        page = new_page(browser, DESKTOP)
        page.goto(f"{server.base}/track/{order['tracking_token']}")
        wait_state(page, "live")
        page.wait_for_function(
            "want => { const m = document.getElementById('driver-marker'); return m && m.getAttribute('data-lat') === want; }",
            arg="52.5256", timeout=WAIT_MS)
        check(page.locator("#tiles image").count() > 0, "tile images on the map")
        deadline = time.time() + 10
        while not tiles.requests and time.time() < deadline:
            time.sleep(0.1)
        check(tiles.requests, "the browser fetched no tiles")
        check(text(page, "#attribution") == "Map tiles: local test server", "tile attribution")
        page.wait_for_timeout(700)
        assert_clean(page, "page with tiles")
        shot(page, "desktop-with-tiles")
        page.context.close()
        driver.close()
    finally:
        tiles.close()


def check_docs(browser, server):
    step("the API documentation renders under its own strict policy")
    page = new_page(browser, DESKTOP)
    page.goto(f"{server.base}/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=WAIT_MS)
    check("MedEx API" in text(page, ".swagger-ui .info .title"), "the document's title")
    page.wait_for_selector(".opblock", timeout=WAIT_MS)
    page.wait_for_timeout(300)
    assert_clean(page, "API documentation")
    shot(page, "docs")
    page.context.close()


def main():
    if not os.path.exists(CHROMIUM):
        skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MEDEX_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("the Python package playwright is not installed (pip install playwright)")
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        skip("the Python package websockets is not installed (pip install websockets)")
    binary = os.environ.get("MEDEX_SERVER_BIN")
    if not binary or not os.path.isfile(binary):
        print("FAILED: set MEDEX_SERVER_BIN to the server binary (cargo build --example server; "
              "target/debug/examples/server)")
        return 2
    binary = os.path.abspath(binary)
    os.makedirs(ARTIFACTS, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix="medex-browser-")
    server = Server(binary, data_dir, free_port())
    if os.path.exists(server.log_path):
        os.remove(server.log_path)
    print(f"tracking page browser test: {binary} on {server.base}")
    failed = False
    try:
        server.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                run(browser, server)
                check_docs(browser, server)
            except Exception:
                failed = True
                traceback.print_exc()
                for context in browser.contexts:
                    for i, page in enumerate(context.pages):
                        try:
                            shot(page, f"failure-{i}")
                            print(f"page errors: {getattr(page, 'errors', [])}")
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
    print("FAILED: tracking page browser test" if failed else "PASSED: tracking page browser test")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
