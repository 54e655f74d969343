from ._backend import BACKEND_NAMES, CelBackend, CelProgram, available_backends, cel_string, get_backend
from ._limits import (
                       MAX_AST_NODES,
                       MAX_COMPREHENSION_DEPTH,
                       MAX_EXPRESSION_CHARS,
                       MAX_PARSE_DEPTH,
                       MAX_REGEX_CHARS,
                       MAX_STRING_LITERAL_CHARS,
)

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
