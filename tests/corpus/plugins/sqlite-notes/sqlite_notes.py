"""Notes in SQLite: add a note, then list them."""

import sqlite3
from pathlib import Path

from promptline import Tool, ToolPlugin, ToolResult


class AddAndList(Tool):
    name = "add_and_list"
    description = "Add a note and return every note"
    parameters = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

    def __init__(self, db: Path):
        self.db = db

    def execute(self, args):
        with sqlite3.connect(self.db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")
            conn.execute("INSERT INTO notes (text) VALUES (?)", (args["text"],))
            rows = [r[0] for r in conn.execute("SELECT text FROM notes ORDER BY id")]
        conn.close()
        return ToolResult.success("\n".join(rows), data=rows)


class NotesPlugin(ToolPlugin):
    def initialize(self, config):
        self.db = Path(config.get("workspace")) / "db" / "notes.sqlite"

    def tools(self):
        return [AddAndList(self.db)]
