"""CEL backends: one small interface over cel-python and cel-expr-python (DESIGN.md §6).

    backend = get_backend()                       # cel-expr-python when installed
    program = backend.compile('within(request.path, "/data")', expect_bool=True)
    program.evaluate({"request": req.to_cel(), "plugin": {...}})   # -> True / False

Both backends check at compile time, with 1-based line:column within the expression:
syntax, undeclared names and functions, unknown ``request``/``plugin`` fields, types where
known, and the cost budget (``_static.MAX_*``). A CEL error at evaluation — returned as a value
or raised — becomes ``CelEvalError``.
"""

from ._backend import (BACKEND_NAMES, CelBackend, CelProgram, available_backends, cel_string,
                       get_backend)
from ._limits import (MAX_AST_NODES, MAX_COMPREHENSION_DEPTH, MAX_EXPRESSION_CHARS,
                      MAX_PARSE_DEPTH, MAX_REGEX_CHARS, MAX_STRING_LITERAL_CHARS)

__all__ = [
    "BACKEND_NAMES",
    "CelBackend",
    "CelProgram",
    "MAX_AST_NODES",
    "MAX_COMPREHENSION_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_PARSE_DEPTH",
    "MAX_REGEX_CHARS",
    "MAX_STRING_LITERAL_CHARS",
    "available_backends",
    "cel_string",
    "get_backend",
]
