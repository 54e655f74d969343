from ._capabilities import env_matches, expand_path, glob, host_matches, in_cidr, is_glob, user_home, within
from ._cel import available_backends, cel_string
from ._decision import DecidedBy, Decision, Effect, RuleRef, Verdict
from ._errors import CelCompileError, CelEvalError, PolicyError, PromptLineError
from ._models import (
                      API_VERSION,
                      Capabilities,
                      Entry,
                      Manifest,
                      PolicyFile,
                      Rule,
                      Settings,
                      load_manifest,
                      load_policy_file,
                      parse_manifest,
)
from ._netspec import DEFAULT_PORTS, parse_net
from ._policyset import (
                      EffectiveSettings,
                      Explanation,
                      PluginInfo,
                      PolicySet,
                      RuleTrace,
                      expand_policy_paths,
                      load_policy_set,
)
from ._request import ACTIONS, Request
from ._testing import run_test_file, uncovered_rules
from ._versions import DISTRIBUTION, SemVer, is_semver, parse_requires, promptline_version, requires_ok
from ._yaml import Located, load_yaml, read_text

__all__ = [
    "DISTRIBUTION",
    "SemVer",
    "is_semver",
    "parse_requires",
    "promptline_version",
    "requires_ok",
    "ACTIONS",
    "API_VERSION",
    "DEFAULT_PORTS",
    "available_backends",
    "Capabilities",
    "cel_string",
    "CelCompileError",
    "CelEvalError",
    "DecidedBy",
    "Decision",
    "Effect",
    "EffectiveSettings",
    "Entry",
    "env_matches",
    "expand_path",
    "expand_policy_paths",
    "Explanation",
    "glob",
    "host_matches",
    "in_cidr",
    "is_glob",
    "load_manifest",
    "load_policy_file",
    "load_policy_set",
    "load_yaml",
    "Located",
    "Manifest",
    "parse_manifest",
    "parse_net",
    "PluginInfo",
    "PolicyError",
    "PolicyFile",
    "PolicySet",
    "PromptLineError",
    "read_text",
    "Request",
    "Rule",
    "RuleRef",
    "RuleTrace",
    "run_test_file",
    "Settings",
    "uncovered_rules",
    "user_home",
    "Verdict",
    "within",
]
