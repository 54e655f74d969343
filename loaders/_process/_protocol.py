"""PromptLine's own messages between the host and a sandboxed child, beside MCP.

Every message of ours carries ``"v": PROTOCOL_VERSION``; a message with another version (or
none) is refused by whichever side reads it — an ask is answered deny, a report is dropped and
logged — so host and child never guess at each other's meaning.

| method                                | direction      | params                                   |
|---------------------------------------|----------------|------------------------------------------|
| ``notifications/promptline/decision`` | child -> host  | v, action, resource, decision, request   |
| ``promptline/ask`` (request)          | child -> host  | v, request, decision -> v, answer, verdict, grant? |
| ``promptline/context``                | host -> child  | query -> text                            |
| ``promptline/complete``               | host -> child  | prompt, options -> a ToolResult dict     |
| ``promptline/model``                  | host -> child  | -> name, available, reason               |
| ``promptline/call_tool`` (request)    | child -> host  | v, name, args -> a ToolResult dict (a dependency's tool) |
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
DECISION_NOTIFICATION = "notifications/promptline/decision"
CONTEXT_METHOD = "promptline/context"
COMPLETE_METHOD = "promptline/complete"
MODEL_METHOD = "promptline/model"
ASK_METHOD = "promptline/ask"
ASK_ID_PREFIX = "promptline-ask-"
CALL_TOOL_METHOD = "promptline/call_tool"
CALL_ID_PREFIX = "promptline-call-"
BOOT_ENV = "PROMPTLINE_BOOTSTRAP"   # the spec; removed from the environment before plugin code runs


def versioned(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` stamped with this protocol's version."""
    return {"v": PROTOCOL_VERSION, **params}


def check_version(params: Any) -> None:
    """Raise ValueError unless ``params`` is an object of this protocol's version."""
    if type(params) is not dict:
        raise ValueError("params must be an object")
    v = params.get("v")
    if v != PROTOCOL_VERSION or type(v) is not int:
        raise ValueError(f"protocol version `{str(v)[:20]}` is not {PROTOCOL_VERSION}")
