"""The plugins: discovery, signatures, approval, loaders (python, process, wasm), the
PluginManager and hot reload. The plugin-author API is :mod:`promptline.sdk`."""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
