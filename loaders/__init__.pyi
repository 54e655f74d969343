from ._approval import ApprovalStatus, ApprovalStore, ApprovalSubject
from ._discovery import (
    DiscoveredPlugin,
    DiscoveryReport,
    current_version,
    discover,
    inspect_plugin,
    manifest_from_tree,
    read_manifest,
)
from ._errors import ApprovalRequired, ApprovalStoreError, LoaderError, SignatureError, ToolError
from ._learn import learn, parse_calls
from ._loader import LoadContext, LoadedPlugin, Loader
from ._manager import LoadReport, ManagerConfig, PluginManager
from ._process._jsonrpc import INVALID_PARAMS, RpcError
from ._process._loader import ContainerLoader, ProcessLoader
from ._process._server import MCPBackend, serve_mcp_loop, stream_io, tool_result_to_mcp
from ._registry import (
    DEFAULT_INDEX,
    INDEX_ENV,
    Index,
    InstallPlan,
    Registry,
    decide_approval,
    default_plugins_dir,
    publish,
    requires_ok,
)
from ._registry._install import default_index
from ._reload import DEBOUNCE_S, END_MARKER, ReloadTarget, Watcher, watch_policy
from ._signing import MANIFEST_FILE, generate_key, key_id, parse_public_key, sign_plugin, verify_plugin
from ._swap import rebuild_and_swap
from ._wasm import WasmLoader

__all__ = [
    "ManagerConfig",
    "ReloadTarget",
    "rebuild_and_swap",
    "DEBOUNCE_S",
    "END_MARKER",
    "DEFAULT_INDEX",
    "INDEX_ENV",
    "INVALID_PARAMS",
    "MANIFEST_FILE",
    "ApprovalRequired",
    "ApprovalStatus",
    "ApprovalStore",
    "ApprovalStoreError",
    "ApprovalSubject",
    "current_version",
    "decide_approval",
    "default_index",
    "default_plugins_dir",
    "discover",
    "DiscoveredPlugin",
    "DiscoveryReport",
    "generate_key",
    "Index",
    "inspect_plugin",
    "InstallPlan",
    "key_id",
    "learn",
    "LoadContext",
    "LoadedPlugin",
    "Loader",
    "ContainerLoader",
    "ProcessLoader",
    "LoaderError",
    "LoadReport",
    "manifest_from_tree",
    "MCPBackend",
    "parse_calls",
    "parse_public_key",
    "PluginManager",
    "publish",
    "read_manifest",
    "Registry",
    "requires_ok",
    "RpcError",
    "serve_mcp_loop",
    "sign_plugin",
    "SignatureError",
    "stream_io",
    "tool_result_to_mcp",
    "ToolError",
    "verify_plugin",
    "WasmLoader",
    "watch_policy",
    "Watcher",
]
