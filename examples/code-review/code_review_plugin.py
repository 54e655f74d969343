"""Code review prompts: the seed's prompt-template plugin.

Templates are Markdown files in `templates/`, shipped (and signed) with the plugin. They
are read while the plugin loads: the plugin's own directory needs no capability. `{{ var }}`
marks a variable; PromptLine renders templates itself, nothing in them is evaluated.
"""

from __future__ import annotations

from pathlib import Path

from promptline import PromptPlugin, PromptTemplate

HERE = Path(__file__).resolve().parent

TEMPLATES = (
    ("code-review", "review.md", "Review code for bugs, security problems and readability"),
    ("explain-diff", "explain-diff.md", "Explain a diff to a reviewer"),
)


class CodeReviewPlugin(PromptPlugin):
    def templates(self):
        return [PromptTemplate(name=name, description=description,
                               template=(HERE / "templates" / filename).read_text(encoding="utf-8"))
                for name, filename, description in TEMPLATES]
