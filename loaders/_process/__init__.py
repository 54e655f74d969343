"""The process sandbox: plugins in child processes speaking MCP (JSON-RPC 2.0) on stdio.

Walls for every child (docs/design.md §7): scrubbed environment, own working directory, no
inherited fds, its own session, rlimits, no capabilities, ``no_new_privs``, its own network
namespace with only loopback (``_netns``) and the host's egress proxy as the one way out
(``_egress``, ``_wall``), a seccomp filter (``_seccomp``) whose exec guard and refusals the
host answers and records (``_supervisor``), and a Landlock ruleset derived from the
manifest (``_landlock``). ``sandbox: container`` adds bubblewrap (``_launch``). Python
plugins also get the in-child Enforcer (``_bootstrap``), whose decisions reach the host's
audit log through the protocol.
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
