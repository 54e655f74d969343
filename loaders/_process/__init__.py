"""The process sandbox: plugins in child processes speaking MCP (JSON-RPC 2.0) on stdio.

Walls for every child (DESIGN.md §7): scrubbed environment, own working directory, no
inherited fds, its own session, rlimits, no capabilities, ``no_new_privs``, a seccomp filter
(``_seccomp``) and a Landlock ruleset derived from the manifest (``_landlock``). Python
plugins also get the in-child Enforcer (``_bootstrap``), whose decisions reach the host's
audit log through the protocol.
"""

from ._client import CallTimeout, MCPClient
from ._jsonrpc import ClosedError, ProtocolError, RpcError
from ._landlock import landlock_abi
from ._launch import SandboxSpec, sandbox_spec, scrub_env
from ._loader import ProcessLoader, ProcessPlugin

__all__ = ["CallTimeout", "ClosedError", "MCPClient", "ProcessLoader", "ProcessPlugin", "ProtocolError",
           "RpcError", "SandboxSpec", "landlock_abi", "sandbox_spec", "scrub_env"]
