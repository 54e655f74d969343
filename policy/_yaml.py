"""Safe YAML loading that remembers where every value came from.

Only YAML's safe subset is accepted (``yaml.SafeLoader`` composes the node tree). Duplicate
keys, aliases that blow up (billion laughs) and oversize files are errors with file:line:column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ._errors import PolicyError

MAX_FILE_BYTES = 1 << 20   # policies and manifests are small; 1 MiB stops memory abuse early
MAX_NODES = 100_000        # bounds alias expansion and absurdly large documents
MAX_DEPTH = 64             # nesting levels; bounds the recursion (and an alias inside itself)

# libyaml's parser when PyYAML was built with it (10x faster); both compose the same safe nodes
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"


@dataclass
class Located:
    """Parsed data plus the (line, column) of every value, keyed by its path of keys/indices."""

    data: Any
    file: str
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    values: dict[tuple, tuple[int, int, str | None]] = field(default_factory=dict)
    """Start (line, column, style) of each value node; style is the scalar style (`|`, `"`...)."""

    def where(self, path: tuple = ()) -> tuple[int | None, int | None]:
        """Line and column of ``path`` or of its nearest located ancestor (1-based)."""
        path = tuple(path)
        while True:
            if path in self.marks:
                return self.marks[path]
            if not path:
                return (None, None)
            path = path[:-1]

    def error(self, path: tuple, message: str, fix: str | None = None) -> PolicyError:
        line, col = self.where(path)
        return PolicyError(message, file=self.file, line=line, column=col, fix=fix)


def read_text(path: str | os.PathLike, *, limit: int = MAX_FILE_BYTES) -> str:
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise PolicyError("file not found", file=name, fix="check the path") from None
    except IsADirectoryError:
        raise PolicyError("is a directory, not a YAML file", file=name,
                          fix="name the .yaml file inside it") from None
    except OSError as exc:
        raise PolicyError(f"cannot read file: {exc.strerror}", file=name,
                          fix="check its permissions") from None
    if len(raw) > limit:
        raise PolicyError(f"file is larger than {limit} bytes", file=name,
                          fix="split it into smaller files")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not valid UTF-8 at byte {exc.start}", file=name,
                          fix="save the file as UTF-8") from None


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document into plain data with source marks; raise PolicyError on error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise PolicyError(f"document is larger than {MAX_FILE_BYTES} bytes", file=file,
                          fix="split it into smaller files")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise PolicyError("NUL byte in YAML text", file=file, line=line,
                          fix="remove the NUL byte")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(f"invalid YAML: {problem}", file=file,
                          line=mark.line + 1 if mark else None,
                          column=mark.column + 1 if mark else None,
                          fix="fix the YAML syntax at this position") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", file=file, fix="fix the YAML syntax") from None
    finally:
        loader.dispose()
    located = Located(None, file)
    if node is None:
        return located
    counter = [0]
    located.data = _convert(node, (), located, loader, counter)
    return located


def _convert(node: yaml.Node, path: tuple, located: Located, loader, counter: list[int]) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise located.error(path, f"document has more than {MAX_NODES} values (alias bomb?)",
                            "remove YAML aliases and shrink the document")
    if len(path) > MAX_DEPTH:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise PolicyError(f"nested more than {MAX_DEPTH} levels deep (or an alias that "
                          f"contains itself)", file=located.file, line=line, column=col,
                          fix="flatten the document and write aliased values out")
    mark = node.start_mark
    where = (mark.line + 1, mark.column + 1)
    located.marks[path] = where
    if type(node) is yaml.ScalarNode:
        located.values[path] = (where[0], where[1], node.style)
        if node.tag == _STR:
            return node.value   # what SafeConstructor.construct_yaml_str returns
        return _scalar(node, loader, located, path)
    located.values[path] = (where[0], where[1], None)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise located.error(path, "YAML merge keys (`<<`) are not supported",
                                    "write the keys out in full")
            if not isinstance(key_node, yaml.ScalarNode):
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise PolicyError("mapping keys must be plain strings", file=located.file,
                                  line=line, column=col, fix="use a plain key")
            if key_node.tag == _STR and type(key_node) is yaml.ScalarNode:
                key = key_node.value
            else:
                key = _scalar(key_node, loader, located, path)
            if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                key = str(key)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first = located.marks.get(path + (key,), (None, None))[0]
                raise PolicyError(f"duplicate key `{key}` (first defined on line {first})",
                                  file=located.file, line=line, column=col,
                                  fix="remove one of the two keys")
            out[key] = _convert(value_node, path + (key,), located, loader, counter)
            located.marks[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), located, loader, counter)
                for i, item in enumerate(node.value)]
    return _scalar(node, loader, located, path)


def _scalar(node: yaml.Node, loader, located: Located, path: tuple) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:   # e.g. an integer of more digits than int() converts (4300)
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise PolicyError(f"invalid value: {str(exc)[:120]}", file=located.file, line=line, column=col,
                          fix="write a shorter value") from None
    except yaml.YAMLError as exc:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise PolicyError(f"invalid value: {getattr(exc, 'problem', exc)}", file=located.file,
                          line=line, column=col, fix="quote the value") from None


def load_yaml_file(path: str | os.PathLike) -> Located:
    name = os.fspath(path)
    return load_yaml(read_text(name), name)
