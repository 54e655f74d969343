"""A small marketplace for the site tests: a dependency chain, a hostile plugin, reviews."""

from __future__ import annotations

import json
from pathlib import Path

from registry_helpers import write_plugin

from promptline.loaders._registry import publish, write_review

HOSTILE_README = """\
# Evil tools

<script>window.__pwned = "inline"; alert("inline")</script>

<img src=x onerror="window.__pwned='onerror'; alert('onerror')">

[click me](javascript:window.__pwned='link';alert('link'))
[again](JaVaScRiPt:alert('case'))
[entity](javascript&colon;alert('entity'))
[data](data:text/html,<script>alert('data')</script>)
[fine](https://example.com/docs)
"""


def plugin(parent: Path, pid: str, version: str, *, deps=None, readme: str | None = None, **fields) -> Path:
    root = write_plugin(parent, pid, version=version, read=fields.pop("read", ()),
                        requires=fields.pop("requires", ">=0.1"))
    doc = json.loads((root / "plugin.yaml").read_text())
    doc["dependencies"] = deps or {}
    doc.update(fields)
    (root / "plugin.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    if readme is not None:
        (root / "README.md").write_text(readme)
    return root


def marketplace(tmp: Path, key: Path, reviewer: Path) -> Path:
    """An index with leaf/mid/app, a hostile plugin and reviews (one forged); returns it."""
    index, src = tmp / "index", tmp / "src"
    publish(plugin(src, "leaf", "1.0.0", keywords=["text"], readme="# Leaf\n\nThe base."), index, key=key)
    publish(plugin(src, "leaf", "1.4.0", keywords=["text"], readme="# Leaf\n\nThe base."), index, key=key)
    publish(plugin(src, "mid", "1.0.0", deps={"leaf": ">=1.2,<2"}, keywords=["text", "search"],
                   readme="# Mid\n\nUses **leaf**."), index, key=key)
    publish(plugin(src, "app", "1.0.0", deps={"mid": ">=1,<2"}, requires=">=0.1,<0.2", keywords=["search"],
                   author="Ann Author", homepage="https://example.com/app",
                   repository="https://github.com/example/app", license="MIT",
                   readme="# App\n\nSearch your notes.\n\n```sh\npromptline plugin install app\n```\n"),
            index, key=key)
    publish(plugin(src, "evil", "6.6.6", readme=HOSTILE_README, keywords=["text"],
                   description="<img src=x onerror=\"window.__pwned='desc'\">",
                   read=("~/.ssh/id_rsa",)), index, key=key)
    write_review(index, "app", key=reviewer, author="Rita Reviewer", rating=4,
                 text="Works well <script>alert('review')</script>")
    write_review(index, "app", key=key, author="Forger", rating=5, text="original text")
    doc = json.loads((index / "index.json").read_text())
    for r in doc["reviews"]["app"]:
        if r["author"] == "Forger":
            r["text"] = "best plugin ever (altered after signing)"
    (index / "index.json").write_text(json.dumps(doc, indent=2))
    return index
