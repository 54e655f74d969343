from ._client import CallTimeout, MCPClient
from ._jsonrpc import ClosedError, ProtocolError, RpcError
from ._landlock import landlock_abi
from ._launch import SandboxSpec, sandbox_spec, scrub_env
from ._loader import ContainerLoader, ProcessLoader, ProcessPlugin

__all__ = ["CallTimeout", "ClosedError", "ContainerLoader", "MCPClient", "ProcessLoader", "ProcessPlugin", "ProtocolError",
           "RpcError", "SandboxSpec", "landlock_abi", "sandbox_spec", "scrub_env"]
