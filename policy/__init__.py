"""The policy language: manifests, policy files, CEL compilation and decisions.

    >>> from policy import load_policy_set, Request
    >>> ps = load_policy_set(["policies/default.yaml"], ["examples/notes/plugin.yaml"])
    >>> ps.decide(Request("fs.read", "notes", path="~/.ssh/id_rsa")).verdict
    <Verdict.DENY: 'deny'>
"""

from ._capabilities import env_matches, glob, host_matches, in_cidr, within
from ._decision import DecidedBy, Decision, Effect, RuleRef, Verdict
from ._errors import CelCompileError, CelEvalError, PolicyError, PromptLineError
from ._models import (API_VERSION, Capabilities, Entry, Manifest, PolicyFile, Rule, Settings,
                      load_manifest, load_policy_file)
from ._policyset import (EffectiveSettings, Explanation, PluginInfo, PolicySet, RuleTrace,
                         expand_policy_paths, load_policy_set)
from ._request import ACTIONS, Request

__all__ = [
    "ACTIONS", "API_VERSION", "Capabilities", "CelCompileError", "CelEvalError", "DecidedBy",
    "Decision", "Effect", "EffectiveSettings", "Entry", "Explanation", "Manifest", "PluginInfo",
    "PolicyError", "PolicyFile", "PolicySet", "PromptLineError", "Request", "Rule", "RuleRef",
    "RuleTrace", "Settings", "Verdict", "env_matches", "expand_policy_paths", "glob",
    "host_matches", "in_cidr", "load_manifest", "load_policy_file", "load_policy_set", "within",
]
