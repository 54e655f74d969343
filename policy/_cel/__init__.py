"""CEL backends: one small interface over cel-python and cel-expr-python (docs/design.md §6).

    backend = get_backend()                       # cel-expr-python when installed
    program = backend.compile('within(request.path, "/data")', expect_bool=True)
    program.evaluate({"request": req.to_cel(), "plugin": {...}})   # -> True / False

Both backends check at compile time, with 1-based line:column within the expression:
syntax, undeclared names and functions, unknown ``request``/``plugin`` fields, types where
known, and the cost budget (``_static.MAX_*``). A CEL error at evaluation — returned as a value
or raised — becomes ``CelEvalError``.
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
