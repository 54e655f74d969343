"""A context plugin reading many files."""

import os

from promptline import ContextPlugin


class GrepContext(ContextPlugin):
    def initialize(self, config):
        self.root = os.path.join(config["workspace"], "texts")

    def get_context(self, query):
        hits = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in sorted(files):
                with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                    if query in fh.read():
                        hits.append(name)
        return f"{len(hits)} files mention {query}: " + ", ".join(hits[:5])
