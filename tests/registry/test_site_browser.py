"""The marketplace in a real browser: Debian's headless Chromium driven by Playwright opens
the served site, searches, opens a plugin page and checks the capability table,
compatibility and a review, and keeps a screenshot; a hostile README stays inert (no
dialog, no script of its own ran) while the site's own script demonstrably runs.

Skips only when /usr/bin/chromium is absent (`.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from site_helpers import marketplace

from promptline.loaders._registry import CSP, serve_site
from promptline.loaders._signing import generate_key

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "marketplace-plugin-page.png"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian chromium is not installed (apt-get install chromium; .ci/run does)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    key, reviewer = tmp / "pub.pem", tmp / "rev.pem"
    generate_key(key)
    generate_key(reviewer)
    index = marketplace(tmp, key, reviewer)
    site = tmp / "site"
    server, url, thread = serve_site(index, site_dir=site, policy_files=[POLICY], version="0.1.0", latest="0.2.0")
    # defence in depth: a page that an escaping bug would produce, under the same CSP
    (site / "probe.html").write_text(
        f'<!doctype html><meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<script>window.__inline = 1; alert("inline")</script>'
        '<a id="js" href="javascript:window.__inline=2;alert(2)">x</a>'
        '<img src="x" onerror="window.__inline=3">')
    yield url, tmp
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _page(browser, dialogs: list, errors: list):
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def test_search_open_plugin_page_and_screenshot(served, browser):
    url, tmp = served
    dialogs, errors = [], []
    page = _page(browser, dialogs, errors)
    page.goto(url + "index.html")
    page.wait_for_selector("#results li.plugin")
    assert page.locator("#results li.plugin").count() == 4                 # the site's script ran
    page.fill("#q", "search")
    page.wait_for_function("document.querySelector('#results').dataset.count === '2'")
    names = page.locator("#results a.plugin-link").all_inner_texts()
    assert sorted(names) == ["App", "Mid"]
    page.fill("#q", "")
    page.select_option("#f-keyword", "search")
    page.select_option("#f-publisher", index=1)
    page.wait_for_function("document.querySelector('#results').dataset.count === '2'")
    page.select_option("#f-keyword", "")
    page.fill("#q", "app")
    page.click("#results a.plugin-link >> text=App")
    page.wait_for_selector("#capability-table")
    rows = page.locator("#capability-table tbody tr")
    assert rows.count() >= 2
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[0] == "load the plugin" and first[2] == "allow"
    net = [r for r in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
           if r[0].startswith("network:")]
    assert net and net[0][1] == "net.connect api.example.com:443"
    compat = page.locator("#compatibility li").all_inner_texts()
    assert compat == ["this PromptLine 0.1.0: compatible", "latest PromptLine 0.2.0: not compatible"]
    review = page.locator("#reviews li.review").all_inner_texts()
    assert len(review) == 1 and "Rita Reviewer" in review[0] and "Works well <script>" in review[0]
    assert "Forger" not in page.content()
    assert "promptline plugin install app@1.0.0 --index " + url + "index/" in page.inner_text("#install")
    shot = tmp / "plugin-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("PROMPTLINE_UPDATE_SCREENSHOT") or not DOCS_SHOT.exists():
        shutil.copyfile(shot, DOCS_SHOT)
    assert not dialogs and not errors
    page.close()


def test_hostile_readme_stays_inert(served, browser):
    url, _ = served
    dialogs, errors = [], []
    page = _page(browser, dialogs, errors)
    page.goto(url + "plugins/evil/index.html")
    page.wait_for_selector("#readme")
    assert "<script>window.__pwned" in page.inner_text("#readme")             # shown, as text
    hrefs = [a.get_attribute("href") for a in page.locator("#readme a").all()]
    assert hrefs == ["https://example.com/docs"]                              # javascript:/data: are not links
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    # the escaping bug the CSP exists for: inline script, handler and javascript: URL are blocked
    page.goto(url + "probe.html")
    page.click("#js", no_wait_after=True)
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__inline") == "undefined"
    assert not dialogs, dialogs
    # honest control: the same browser runs a script when no CSP forbids it
    page.close()
    control = _page(browser, dialogs, errors)
    control.set_content("<script>window.__control = 1</script>")
    assert control.evaluate("window.__control") == 1
    control.close()
