"""The audit log: tamper-evident JSON Lines (docs/design.md §10, schema in docs/audit-log.md).

Writing::

    from promptline.enforcer.audit import AuditLog, AuditSettings
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

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
