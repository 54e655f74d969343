"""The runtime: Enforcer.check(), audit-hook guards, prompts and the audit log."""
