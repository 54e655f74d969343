"""The audit log: tamper-evident JSON Lines (DESIGN.md §10, schema in docs/audit-log.md).

Writing::

    from enforcer.audit import AuditLog, AuditSettings
    log = AuditLog(path, settings=AuditSettings(log_allows=True, fsync=False))
    log.decision(plugin_id, plugin_version, action, resource, decision.to_dict(),
                 request=None, message="")      # deny/ask: durable before it returns
    log.lifecycle(plugin_id, plugin_version, "loaded", detail="")
    log.policy_reload(ok=True, version="v42")
    log.flush(); log.close()

Reading: ``read_log`` (records and problems), ``verify`` (the hash chain), ``select``
(filters) and ``stats``. Audit hooks: ``writing()`` is True while the calling thread is
inside the writer; the enforcer's hook must let such events pass undecided.
"""

from ._reader import (LogEntry, Problem, Stats, VerifyReport, parse_when, read_log,
                      read_records, select, stats, verify)
from ._records import (GENESIS, KINDS, LIFECYCLE_EVENTS, SCHEMA_VERSION, AuditError,
                       canonical, line_hash)
from ._sinks import StdoutSink, SyslogSink, rfc5424
from ._writer import LOG_ENV, AuditLog, AuditSettings, default_log_path, writing

__all__ = [
    "GENESIS", "KINDS", "LIFECYCLE_EVENTS", "LOG_ENV", "SCHEMA_VERSION",
    "AuditError", "AuditLog", "AuditSettings", "LogEntry", "Problem", "Stats", "StdoutSink",
    "SyslogSink", "VerifyReport",
    "canonical", "default_log_path", "line_hash", "parse_when", "read_log", "read_records",
    "rfc5424", "select", "stats", "verify", "writing",
]
