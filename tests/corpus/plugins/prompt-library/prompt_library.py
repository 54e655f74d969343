"""A prompt plugin: every *.md file of the team's prompt directory is a template."""

from pathlib import Path

from promptline import PromptPlugin, PromptTemplate


class Library(PromptPlugin):
    def initialize(self, config):
        self.root = Path(config["workspace"]) / "prompts"

    def templates(self):
        return [PromptTemplate(name=p.stem, template=p.read_text(encoding="utf-8"),
                               description=f"from {p.name}") for p in sorted(self.root.glob("*.md"))]
