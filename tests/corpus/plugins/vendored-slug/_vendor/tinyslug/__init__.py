"""tinyslug 0.1 (vendored): ASCII slugs."""

import re
import unicodedata

__version__ = "0.1"


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
