"""The policy language: manifests, policy files, CEL compilation and decisions.

    >>> from policy import load_policy_set, Request
    >>> ps = load_policy_set(["policies/default.yaml"], ["examples/notes/plugin.yaml"])
    >>> ps.decide(Request("fs.read", "notes", path="~/.ssh/id_rsa")).verdict
    <Verdict.DENY: 'deny'>
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
