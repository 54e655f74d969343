"""Signed org policy bundles: the format (build, sign, verify) and a host's updater."""

from ._fetch import BundleConfig, BundleUpdater, config_from_file, read_state
from ._format import Bundle, BundleError, build_bundle, read_bundle, sign_bundle, verify_bundle

__all__ = ["Bundle", "BundleConfig", "BundleError", "BundleUpdater", "build_bundle", "config_from_file", "read_bundle", "read_state",
           "sign_bundle", "verify_bundle"]
