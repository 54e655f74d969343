from ._archive import MAX_ARCHIVE_BYTES, MAX_MEMBER_BYTES, MAX_MEMBERS, MAX_TOTAL_BYTES, build_archive, extract_archive
from ._deps import Need, Pick, dependency_closure, load_order, resolve
from ._errors import RegistryError
from ._index import DEFAULT_INDEX, INDEX_ENV, INDEX_FILE, INDEX_FORMAT, Index, IndexEntry
from ._install import (
                       STATE_FILE,
                       CapabilityCheck,
                       Installed,
                       InstallPlan,
                       InstallSet,
                       Registry,
                       UnsignedEntry,
                       capability_checks,
                       decide_approval,
                       decide_set_approval,
                       default_index,
                       default_plugins_dir,
)
from ._publish import publish
from ._reviews import Review, verified_reviews, write_review
from ._site import CSP, build_site, render_markdown, serve_site
from ._sources import Source, fetch_git, parse_source
from ._stats import plugin_stats
from ._versions import SemVer, requires_ok

__all__ = [
    "CapabilityCheck", "DEFAULT_INDEX", "INDEX_ENV", "INDEX_FILE", "INDEX_FORMAT", "Index", "IndexEntry",
    "InstallPlan", "InstallSet", "Installed", "Need", "Pick", "load_order", "dependency_closure", "resolve",
    "decide_set_approval", "Review", "verified_reviews", "write_review", "build_site", "render_markdown", "CSP",
    "serve_site", "plugin_stats", "MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES",
    "Registry", "RegistryError", "STATE_FILE", "UnsignedEntry", "SemVer", "Source", "build_archive", "capability_checks",
    "decide_approval", "default_index", "default_plugins_dir", "extract_archive", "fetch_git", "parse_source",
    "publish", "requires_ok",
]
