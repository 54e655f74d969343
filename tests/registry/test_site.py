"""The marketplace site without a browser: pages, hostile content escaped, reviews verified,
every script external, every page under the CSP; the link filter over many spellings."""

from __future__ import annotations

import html.parser
import json
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from site_helpers import marketplace

from promptline.loaders._registry import CSP, build_site, render_markdown, serve_site, verified_reviews
from promptline.loaders._registry._site import safe_link
from promptline.loaders._signing import generate_key

POLICY = str(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    key, reviewer = tmp / "pub.pem", tmp / "rev.pem"
    generate_key(key)
    generate_key(reviewer)
    index = marketplace(tmp, key, reviewer)
    out = build_site(index, tmp / "out", policy_files=[POLICY], version="0.1.0", latest="0.2.0",
                     index_url="https://plugins.example.com/")
    return index, out


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(path: Path) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(path.read_text())
    return p.tags


def test_every_page_has_the_csp_and_only_external_scripts(site):
    _, out = site
    pages = list(out.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        tags = _tags(page)
        metas = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert metas and metas[0]["content"] == CSP, page
        for tag, attrs in tags:
            if tag == "script":
                assert attrs.get("src", "").endswith("static/app.js") or attrs.get("type") == "application/json"
            assert not any(k.startswith("on") for k in attrs), (page, tag, attrs)
            for k in ("href", "src"):
                if k in attrs:
                    assert safe_link(attrs[k]), (page, attrs)
                    if tag in ("script", "link") or (tag == "a" and "://" not in attrs[k]):
                        target = (page.parent / attrs[k].split("#")[0]).resolve()
                        assert target.is_file() and target.is_relative_to(out.resolve()), (page, attrs[k])
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_plugin_page_shows_what_the_issue_promises(site):
    _, out = site
    page = (out / "plugins" / "app" / "index.html").read_text()
    assert "<h1>App</h1>" in page and "Search your notes." in page                     # README rendered
    assert "promptline plugin install app@1.0.0 --index https://plugins.example.com/" in page
    assert 'data-compat="yes">this PromptLine 0.1.0: compatible' in page
    assert 'data-compat="no">latest PromptLine 0.2.0: not compatible' in page
    assert "capability-table" in page and "plugin.load app" in page
    assert "signed by untrusted key" in page                                           # default policy
    assert "https://github.com/example/app/issues" in page and "Ann Author" in page and "MIT" in page
    assert 'href="../mid/index.html"' in page                                         # dependency link
    assert "Rita Reviewer" in page and "★★★★☆" in page
    assert "Works well &lt;script&gt;" in page
    assert "Forger" not in page and "altered" not in page                              # bad signature
    assert "Reviews (1)" in page
    source = (out / "plugins" / "app" / "files" / "app.py.html").read_text()
    assert "class Echo(Tool)" in source and "sha256" in source
    listing = json.loads((out / "plugins.json").read_text())
    assert {p["id"] for p in listing} == {"app", "evil", "leaf", "mid"}
    assert next(p for p in listing if p["id"] == "mid")["keywords"] == ["text", "search"]


def test_hostile_readme_and_fields_are_inert(site):
    _, out = site
    page = (out / "plugins" / "evil" / "index.html").read_text()
    tags = _tags(out / "plugins" / "evil" / "index.html")
    assert "&lt;script&gt;window.__pwned" in page                              # shown as text
    assert [t for t, a in tags if t == "script"] == ["script"]                 # only app.js
    assert not [t for t, a in tags if t == "img"]                              # raw HTML is text
    assert not any(k.startswith("on") for _, a in tags for k in a)
    hrefs = [a["href"] for t, a in tags if t == "a" and "href" in a]
    assert "https://example.com/docs" in hrefs                                 # honest control: a real link
    assert all(safe_link(h) for h in hrefs)
    assert not any(h.lower().lstrip().startswith(("javascript", "data")) for h in hrefs)
    assert any(a.get("class") == "v-deny" for t, a in tags if t == "tr")       # ~/.ssh refused by the policy


def test_reviews_verify(site):
    index, _ = site
    doc = json.loads((index / "index.json").read_text())
    shown = verified_reviews(doc, "app")
    assert [r.author for r in shown] == ["Rita Reviewer"]
    assert len(doc["reviews"]["app"]) == 2


def test_serve_serves_the_site_and_the_index_with_headers(site, tmp_path):
    index, _ = site
    server, url, thread = serve_site(index, site_dir=tmp_path / "served", policy_files=[POLICY])
    try:
        with urllib.request.urlopen(url + "plugins/app/index.html") as resp:
            assert resp.headers["Content-Security-Policy"] == CSP
            assert "--index " + url + "index/" in resp.read().decode()
        with urllib.request.urlopen(url + "index/index.json") as resp:
            assert json.loads(resp.read())["format"] == "promptline-index/v1"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "index/..%2f..%2fetc/passwd")
    finally:
        server.shutdown()
        server.server_close()


BAD_SCHEMES = ["javascript", "JaVaScRiPt", "vbscript", "data", "file", "jar"]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(BAD_SCHEMES), st.sampled_from(["", " ", "\t", "\n", "\x00", "\x01", "%20", "&#x20;"]),
       st.sampled_from([":", "&colon;", "&#58;", "&#x3a;", "%3a"]), st.text(max_size=10))
def test_no_dangerous_link_survives_rendering(scheme, pad, colon, rest):
    """Every spelling of a dangerous scheme the browser would honour, as a Markdown link or
    autolink, renders as no link at all or as a harmless relative one."""
    for text in (f"[x]({pad}{scheme}{colon}alert(1){rest})", f"<{scheme}{colon}alert(1)>",
                 f"[x]: {pad}{scheme}{colon}alert(1)\n\n[x]", f"![i]({scheme}{colon}alert(1))"):
        out = render_markdown(text)
        p = _Tags()
        p.feed(out)
        for _, attrs in p.tags:
            for k in ("href", "src"):
                if k in attrs:
                    value = attrs[k].strip().replace("\t", "").replace("\n", "").lower()
                    assert not value.startswith(tuple(s.lower() + ":" for s in BAD_SCHEMES)), (text, out)
                    assert safe_link(attrs[k])
    assert render_markdown("[ok](https://example.com)").count('href="https://example.com"') == 1
