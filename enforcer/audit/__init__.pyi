from ._flag import writing
from ._reader import (
    LogEntry,
    Problem,
    Stats,
    VerifyReport,
    open_log_file,
    parse_line,
    parse_when,
    read_log,
    read_records,
    select,
    stats,
    verify,
)
from ._records import GENESIS, KINDS, LIFECYCLE_EVENTS, SCHEMA_VERSION, AuditError, canonical, line_hash, rotated_files
from ._sinks import StdoutSink, SyslogSink, rfc5424
from ._writer import LOG_ENV, AuditLog, AuditSettings, default_log_path

__all__ = [
    "GENESIS",
    "KINDS",
    "LIFECYCLE_EVENTS",
    "LOG_ENV",
    "SCHEMA_VERSION",
    "AuditError",
    "AuditLog",
    "AuditSettings",
    "canonical",
    "default_log_path",
    "line_hash",
    "LogEntry",
    "open_log_file",
    "parse_line",
    "parse_when",
    "Problem",
    "read_log",
    "read_records",
    "rfc5424",
    "rotated_files",
    "select",
    "Stats",
    "stats",
    "StdoutSink",
    "SyslogSink",
    "verify",
    "VerifyReport",
    "writing",
]
