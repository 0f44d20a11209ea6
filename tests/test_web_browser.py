"""The web client in a real browser: Debian's chromium, driven by Playwright through ``executable_path``
(no browser is ever downloaded), against the local app as ``make dev`` runs it: two regions on one
PostgreSQL, the local issuer's sign-in page and token endpoint, the client served with its strict CSP
from its own origin, so every API call is a real cross-origin (CORS) request.

A test that fails saves a screenshot under build/browser-failures/. With WEB_SCREENSHOTS=<folder>
(``make screenshots`` uses docs/screenshots) the main pages are saved there as small PNGs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from local.__main__ import web_identity
from local.auth import LocalIssuer, container_env
from local.control import ControlServer, open_control
from local.launcher import LocalApp, start_local_app
from local.oauth import s256
from local.web import PROJECT_ROOT, WebServer, open_web
from scripts.build_web import WEB_DIR, build_web

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
EAST, WEST = "us-east-1", "us-east-2"
FAILURES = PROJECT_ROOT / "build" / "browser-failures"
SCREENSHOTS = os.environ.get("WEB_SCREENSHOTS")


@dataclass
class Stack:
    app: LocalApp
    control: ControlServer
    web: WebServer
    issuer: LocalIssuer


@pytest.fixture(scope="module")
def stack(module_migrated_database_url: str) -> Iterator[Stack]:
    build_web()  # make install-dev ran npm ci --prefix web-vendor; else this says so
    issuer = LocalIssuer.create()
    web = open_web(0)
    app = start_local_app(
        module_migrated_database_url,
        [(EAST, 0), (WEST, 0)],
        env={"CORS_ALLOW_ORIGINS": web.origin, **container_env(issuer)},
        output=open(os.devnull, "wb"),  # noqa: SIM115 - lives as long as the module's app
        log=lambda _: None,
    )
    control = open_control(0)
    identity = web_identity(web, issuer, app)
    control.serve(app, identity=identity)
    web.serve(WEB_DIR, app.urls, identity)
    try:
        yield Stack(app, control, web, issuer)
    finally:
        web.close()
        control.close()
        app.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install chromium chromium-driver (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no tokens, no chosen region) per test; a screenshot when it fails, and
    no Content-Security-Policy violation whatever happened."""
    context = browser.new_context(viewport={"width": 900, "height": 700})
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.on("pageerror", lambda error: violations.append(f"uncaught: {error}"))
    failed_before = request.session.testsfailed
    try:
        yield page
        assert violations == []
    finally:
        # A failure of the test's body is counted before its fixtures are torn down.
        if request.session.testsfailed > failed_before:
            FAILURES.mkdir(parents=True, exist_ok=True)
            shot = FAILURES / f"{request.node.name}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failed test: {shot}")
        context.close()


def snapshot(page: Page, name: str) -> None:
    """One of the README's screenshots (only with WEB_SCREENSHOTS): the page as a person sees it."""
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def open_app(page: Page, stack: Stack, hash_: str = "") -> None:
    page.goto(f"{stack.web.origin}/{hash_}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    settled(page)


def sign_in(page: Page, stack: Stack, username: str, *, admin: bool = False, shot: str | None = None) -> str:
    """Through the local sign-in page, as a person would; returns the e-mail used."""
    email = f"{username}@example.com"
    open_app(page, stack)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("User name")).to_be_visible()
    page.get_by_label("User name").fill(username)
    page.get_by_label("E-mail").fill(email)
    if admin:
        page.get_by_label("Administrator").check()
    if shot:
        snapshot(page, shot)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(
        f"Signed in as {username}" + (" (administrator)" if admin else "")
    )
    settled(page)
    return email


def settled(page: Page) -> None:
    """The view has loaded: <main> is no longer aria-busy."""
    expect(page.locator("#main")).to_have_attribute("aria-busy", "false")


def pick_region(page: Page, region: str) -> None:
    page.get_by_label("Region").select_option(region)
    settled(page)


def served_by(page: Page, region: str) -> None:
    expect(page.locator("#served-by")).to_have_text(f"Answered by {region}")


def api(stack: Stack, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - the local app, http only
        stack.app.urls[EAST] + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - the local app
        return json.loads(response.read() or b"null")


def set_region_state(stack: Stack, region: str, state: str, kind: str = "regions") -> None:
    """Through the launcher's control endpoint, as tools.drill does (``kind`` "identity": the region's
    Cognito rather than its API)."""
    req = urllib.request.Request(  # noqa: S310 - the local app, http only
        f"{stack.control.url}/{kind}/{region}",
        data=json.dumps({"state": state}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as response:  # noqa: S310 - the local app
        assert response.status == 200


# ---------------------------------------------------------------- the tests


def test_a_user_signs_in_creates_and_edits_a_profile_in_both_regions(page: Page, stack: Stack) -> None:
    username = unique("alice")
    email = sign_in(page, stack, username, shot="sign-in")
    expect(page.locator("#profile-state")).to_have_text("You have no profile yet. Create it here.")
    served_by(page, EAST)
    expect(page.get_by_label("E-mail")).to_have_value(email)  # from the ID token's email claim
    page.get_by_label("Name").fill("Alice Liddell")
    page.get_by_role("button", name="Create profile").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Profile created in {EAST}.")
    expect(page.locator("#profile-id")).not_to_be_empty()
    snapshot(page, "profile")

    # The other region reads the same database: the profile is there, and an edit there holds.
    pick_region(page, WEST)
    served_by(page, WEST)
    expect(page.get_by_label("Name")).to_have_value("Alice Liddell")
    page.get_by_label("Name").fill("Alice in us-east-2")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Profile saved in {WEST}.")
    pick_region(page, EAST)
    served_by(page, EAST)
    expect(page.get_by_label("Name")).to_have_value("Alice in us-east-2")

    # The regular user sees no "Everyone" page, and a typed URL to it says why.
    expect(page.get_by_role("link", name="Everyone")).to_be_hidden()
    page.goto(f"{stack.web.origin}/#/everyone")
    expect(page.get_by_role("alert")).to_contain_text("Only administrators can see everyone")
    settled(page)

    # A validation error is said beside the field; then the profile is deleted.
    page.get_by_label("E-mail").fill("someone-else@example.com")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("Problem:")
    page.get_by_label("E-mail").fill(email)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete profile").click()
    expect(page.get_by_role("alert")).to_contain_text("Your profile is deleted.")
    expect(page.get_by_role("button", name="Create profile")).to_be_visible()


def test_an_admin_pages_through_everyone(page: Page, stack: Stack) -> None:
    admin_token = stack.issuer.token(unique("seeder"), admin=True)
    batch = unique("paged")
    for number in range(12):
        api(
            stack,
            "POST",
            "/users",
            admin_token,
            {"name": f"{batch} {number}", "email": f"{batch}-{number}@example.com"},
        )
    sign_in(page, stack, unique("admin"), admin=True)
    page.get_by_role("link", name="Everyone").click()
    expect(page.get_by_role("heading", name="Everyone")).to_be_visible()
    rows = page.locator("#everyone-rows tr")
    expect(rows).to_have_count(10)
    expect(page.locator("#everyone-state")).to_have_text("Page 1: 10 users.")
    expect(rows.first).to_contain_text(f"{batch} 11")  # newest first
    served_by(page, EAST)
    snapshot(page, "everyone")
    expect(page.get_by_role("button", name="First page")).to_be_disabled()
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#everyone-state")).to_contain_text("Page 2:")
    expect(rows.first).to_contain_text(f"{batch} 1")
    page.get_by_role("button", name="First page").click()
    expect(page.locator("#everyone-state")).to_have_text("Page 1: 10 users.")


def test_sign_out_ends_the_session(page: Page, stack: Stack) -> None:
    sign_in(page, stack, unique("carol"))
    served_by(page, EAST)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.url == f"{stack.web.origin}/"
    assert page.evaluate("sessionStorage.getItem('users.tokens')") is None
    expect(page.locator("#who")).to_have_text("")


def test_an_expired_token_is_refreshed_and_a_dead_session_is_sent_back_to_sign_in(
    page: Page, stack: Stack
) -> None:
    username = unique("dave")
    sign_in(page, stack, username)
    served_by(page, EAST)
    expired = stack.issuer.token(username, email=f"{username}@example.com", now=time.time() - 7200)
    tokens = json.loads(page.evaluate("sessionStorage.getItem('users.tokens')"))

    # An expired ID token with a good refresh token: the client gets a new one and carries on.
    tokens["idToken"] = expired
    page.evaluate("t => sessionStorage.setItem('users.tokens', t)", json.dumps(tokens))
    page.reload()
    expect(page.locator("#profile-state")).to_have_text("You have no profile yet. Create it here.")
    assert json.loads(page.evaluate("sessionStorage.getItem('users.tokens')"))["idToken"] != expired

    # Expired and no usable refresh token: back to the sign-in page, saying why.
    tokens.update(idToken=expired, refreshToken="revoked-or-unknown")
    page.evaluate("t => sessionStorage.setItem('users.tokens', t)", json.dumps(tokens))
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Your session has ended. Sign in again")
    page.get_by_role("alert").get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("User name")).to_be_visible()


def test_with_the_primarys_identity_down_sign_in_and_refresh_go_through_the_replica(
    page: Page, stack: Stack
) -> None:
    identity_answers: list[tuple[str, int, str | None]] = []
    page.on(
        "response",
        lambda response: (
            identity_answers.append(
                (urlsplit(response.url).path, response.status, response.headers.get("x-served-region"))
            )
            if "/oauth2/token" in response.url or "/cognito-idp/" in response.url
            else None
        ),
    )
    set_region_state(stack, EAST, "down", kind="identity")
    try:
        username = unique("erin")
        sign_in(page, stack, username)  # the managed-login domain failed over to the replica's region
        assert identity_answers == [("/oauth2/token", 200, WEST)]

        # The domain stops answering (on AWS: a Cognito-only outage, which its failover does not see):
        # an expired ID token is renewed at the regional endpoints, the primary's first, then the replica's.
        page.route("**/oauth2/token", lambda route: route.abort())
        tokens = json.loads(page.evaluate("sessionStorage.getItem('users.tokens')"))
        expired = stack.issuer.token(username, email=f"{username}@example.com", now=time.time() - 7200)
        page.evaluate(
            "t => sessionStorage.setItem('users.tokens', t)", json.dumps({**tokens, "idToken": expired})
        )
        identity_answers.clear()
        page.reload()
        expect(page.locator("#profile-state")).to_have_text("You have no profile yet. Create it here.")
        assert identity_answers == [
            (f"/cognito-idp/{EAST}/", 503, EAST),
            (f"/cognito-idp/{WEST}/", 200, WEST),
        ]
        assert json.loads(page.evaluate("sessionStorage.getItem('users.tokens')"))["idToken"] != expired
    finally:
        set_region_state(stack, EAST, "up", kind="identity")


def test_a_region_that_is_down_is_said_clearly_and_the_other_one_is_offered(page: Page, stack: Stack) -> None:
    sign_in(page, stack, unique("erin"))
    served_by(page, EAST)
    set_region_state(stack, EAST, "down")
    try:
        page.reload()
        expect(page.get_by_role("alert")).to_contain_text(f"The {EAST} region is not answering")
        snapshot(page, "region-down")
        page.get_by_role("button", name=f"Use {WEST}").click()
        served_by(page, WEST)
        expect(page.get_by_label("Region")).to_have_value(WEST)
        expect(page.locator("#profile-state")).to_have_text("You have no profile yet. Create it here.")
    finally:
        set_region_state(stack, EAST, "up")


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (403, {}, "You are not allowed to do that (not yours)."),
        (409, {}, "That conflicts with what exists: not yours."),
        (413, {}, "What you sent is too large for the API."),
        (429, {"Retry-After": "7"}, "Too many requests right now. Wait 7 s and try again."),
        (503, {"Retry-After": "5"}, f"The {EAST} region cannot reach its database. Try again in 5 s"),
    ],
)
def test_each_error_status_is_said_in_words(
    page: Page, stack: Stack, status: int, headers: dict[str, str], expected: str
) -> None:
    """The API's answers, as the gateway or the function give them, replayed by the browser's own
    request interception (each is proven server-side by the handler's and the edge's tests)."""
    sign_in(page, stack, unique("frank"))
    served_by(page, EAST)
    body = json.dumps({"error": {"code": "x", "message": "not yours"}})
    cors = {
        "Access-Control-Allow-Origin": stack.web.origin,
        "Access-Control-Expose-Headers": "Location, Retry-After, X-Served-Region",
        "X-Served-Region": EAST,
    }
    page.route(
        f"{stack.app.urls[EAST]}/users/me",
        lambda route: route.fulfill(
            status=status, headers={**cors, **headers}, content_type="application/json", body=body
        ),
    )
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text(expected)
    expect(page.get_by_role("alert")).to_contain_text("Problem:")  # said in words, not only in red


def test_the_api_reference_renders_from_the_local_copy_of_swagger_ui(page: Page, stack: Stack) -> None:
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    page.goto(f"{stack.web.origin}/api.html")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("users", ignore_case=True)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    snapshot(page, "api-reference")
    assert all(url.startswith(stack.web.origin) for url in requested), requested  # no CDN


def test_the_client_fits_a_phone(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        sign_in(page, stack, unique("gina"))
        served_by(page, EAST)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width} px wide on a 375 px phone"
        snapshot(page, "phone")
        # Keyboard only: from the top of the page, Tab reaches the region picker, then the form's fields.
        page.locator("a.skip").focus()
        focused: list[str] = []
        for _ in range(15):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("document.activeElement.id"))
        assert focused.index("region-picker") < focused.index("profile-name") < focused.index("profile-email")
    finally:
        context.close()


def test_the_browser_pkce_matches_rfc7636_and_the_issuer(page: Page, stack: Stack) -> None:
    """auth.js's S256 in the browser's WebCrypto: RFC 7636 Appendix B's pair, and a random verifier
    hashed the same way the local issuer checks it."""
    open_app(page, stack)
    rfc = page.evaluate(
        "v => import('/js/auth.js').then(m => m.s256(v))", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    )
    assert rfc == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = secrets.token_urlsafe(96)
    assert page.evaluate("v => import('/js/auth.js').then(m => m.s256(v))", verifier) == s256(verifier)
