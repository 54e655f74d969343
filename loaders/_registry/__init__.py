"""The plugin registry: install, update, remove and publish plugins.

    from loaders._registry import Registry, publish
    entry = publish("my-plugin", "/srv/index", key="~/.config/promptline/keys/me.pem")
    reg = Registry("~/.config/promptline/plugins", policy_files=["policies/default.yaml"],
                   index="https://plugins.example.com/")
    with reg.prepare_install("my-plugin") as plan:      # fetched, verified, not installed
        for check in plan.checks: print(check.capability, check.verdict)
        plan.commit(approved=decide_approval(plan, yes=False, confirm=ask_the_user))
    reg.update("my-plugin", confirm=ask_the_user)
    reg.remove("my-plugin", manager=pm)

Sources, archives, the index format and the ``--yes`` rule are described in the
docstrings of ``_sources``, ``_archive``, ``_index`` and ``_install``; docs/registry.md
walks through the commands.
"""

from ._archive import (MAX_ARCHIVE_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS, MAX_TOTAL_BYTES, build_archive,
                       extract_archive)
from ._errors import RegistryError
from ._index import DEFAULT_INDEX, INDEX_ENV, INDEX_FILE, INDEX_FORMAT, Index, IndexEntry
from ._install import (STATE_FILE, CapabilityCheck, InstallPlan, Installed, Registry, capability_checks,
                       decide_approval, default_index, default_plugins_dir)
from ._publish import publish
from ._sources import Source, fetch_git, parse_source
from ._versions import SemVer, requires_ok

__all__ = [
    "CapabilityCheck", "DEFAULT_INDEX", "INDEX_ENV", "INDEX_FILE", "INDEX_FORMAT", "Index", "IndexEntry",
    "InstallPlan", "Installed", "MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES",
    "Registry", "RegistryError", "STATE_FILE", "SemVer", "Source", "build_archive", "capability_checks",
    "decide_approval", "default_index", "default_plugins_dir", "extract_archive", "fetch_git", "parse_source",
    "publish", "requires_ok",
]
