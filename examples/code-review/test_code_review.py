"""Unit tests for the code-review templates, run directly: python -m pytest examples/code-review/
(CI loads the signed plugin through the PluginManager in tests/examples/)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from code_review_plugin import CodeReviewPlugin  # noqa: E402


def test_templates_render():
    templates = {t.name: t for t in CodeReviewPlugin().templates()}
    assert templates["code-review"].variables == ("language", "code")
    text = templates["code-review"].render(language="python", code="print({{ x }})")
    assert "```python\nprint({{ x }})\n```" in text          # values are not re-rendered
    assert templates["explain-diff"].variables == ("diff",)
