"""Policy test files: requests with expected decisions, run like `opa test`.

    apiVersion: promptline/v1
    kind: PolicyTest
    policies: [default.yaml]          # relative to this file
    manifests: [../examples/notes/plugin.yaml]
    plugins:                          # inline manifests, same schema as plugin.yaml
      - {id: notes, version: 1.0.0, entry: {python: "notes:Plugin"}}
    cases:
      - name: ssh keys are refused
        request: {plugin: notes, action: fs.read, path: ~/.ssh/id_rsa}
        expect: deny                  # allow | deny | ask
        rule: no-ssh-keys             # optional: the deciding rule
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ._errors import PolicyError
from ._models import API_VERSION, parse_manifest, validation_error
from ._policyset import PolicySet, load_policy_set
from ._request import Request
from ._yaml import Located, load_yaml_file


class _Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    request: dict[str, Any]
    expect: Literal["allow", "deny", "ask"]
    rule: str | None = None


class _TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    apiVersion: Literal["promptline/v1"]
    kind: Literal["PolicyTest"]
    policies: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    plugins: tuple[dict[str, Any], ...] = ()
    cases: tuple[_Case, ...]


@dataclass(frozen=True)
class CaseResult:
    name: str
    origin: str
    passed: bool
    expected: str
    got: str
    rule: str
    detail: str


@dataclass(frozen=True)
class TestFileResult:
    file: str
    results: tuple[CaseResult, ...]
    policy: PolicySet

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)


def _load_test_file(path: str, backend: str | None) -> tuple[_TestFile, PolicySet, list[tuple[_Case, Request, str]]]:
    """The parsed test file, its PolicySet and each case's request (with its file:line)."""
    located = load_yaml_file(path)
    if not isinstance(located.data, dict):
        raise located.error((), "a policy test must be a YAML mapping", f"start with `apiVersion: {API_VERSION}`")
    try:
        spec = _TestFile.model_validate(located.data)
    except ValidationError as exc:
        raise validation_error(exc, located, "policy test") from None
    base = os.path.dirname(os.path.abspath(path))
    manifests: list[Any] = [os.path.join(base, m) for m in spec.manifests]
    for i, raw in enumerate(spec.plugins):
        sub = Located(raw, located.file, {k[3:]: v for k, v in located.marks.items() if k[:2] == ("plugins", i)})
        manifests.append(parse_manifest(sub))
    ps = load_policy_set([os.path.join(base, p) for p in spec.policies], manifests, backend=backend,
                         refuse_writable=False)   # the plugins here are hypothetical
    cases = []
    for i, case in enumerate(spec.cases):
        line = located.where(("cases", i))[0]
        fields = dict(case.request)
        try:
            if "argv" in fields:
                fields["argv"] = tuple(fields["argv"])
            if fields.get("action") == "tool.call" and "args" in fields:
                req = Request.tool_call(fields["plugin"], fields.get("tool", ""), fields["args"])
            else:
                req = Request(**fields)
        except (TypeError, ValueError) as exc:
            raise located.error(("cases", i, "request"), f"case `{case.name}`: bad request: {exc}",
                                "use the fields action, plugin, path, host, port, name, argv, tool, args") from None
        cases.append((case, req, f"{path}:{line}"))
    return spec, ps, cases


def check_test_file(path: str, backend: str | None = None) -> int:
    """Validate a PolicyTest file without running it (schema, its policies and manifests
    compile, every case's request is well formed); the number of cases. Raises PolicyError."""
    return len(_load_test_file(path, backend)[2])


def run_test_file(path: str, backend: str | None = None) -> TestFileResult:
    """Load a PolicyTest file, build its PolicySet and run every case."""
    _, ps, cases = _load_test_file(path, backend)
    results = []
    for case, req, origin in cases:
        d = ps.decide(req)
        got = d.verdict.value
        rule = d.rule.id if d.rule else ""
        passed = got == case.expect and (case.rule is None or case.rule == rule)
        detail = d.reason() + (f"; errors: {'; '.join(d.errors)}" if d.errors else "")
        results.append(CaseResult(case.name, origin, passed, case.expect + (f" by `{case.rule}`" if case.rule else ""),
                                  got + (f" by `{rule}`" if rule else ""), rule, detail))
    return TestFileResult(path, tuple(results), ps)


def file_kind(path: str) -> str:
    """The ``kind`` a YAML file declares (``Policy``, ``PolicyTest``...); PolicyError if it
    is not a mapping with a string ``kind``."""
    located = load_yaml_file(path)
    kind = located.data.get("kind") if isinstance(located.data, dict) else None
    if not isinstance(kind, str):
        raise located.error((), "no `kind:`", "start the file with `apiVersion: promptline/v1` and "
                            "`kind: Policy` (or `kind: PolicyTest`)")
    return kind


def uncovered_rules(results: list[TestFileResult]) -> list[tuple[str, str]]:
    """Rules (id, origin) from policy files that no case hit as the deciding rule."""
    hit = {r.rule for tf in results for r in tf.results}
    out = []
    for tf in results:
        for rule in tf.policy.rules:
            if rule.ref.layer in ("org", "project", "user") and rule.id not in hit:
                out.append((rule.id, rule.ref.origin))
    return sorted(set(out))


__all__ = ["check_test_file", "file_kind", "run_test_file", "uncovered_rules", "TestFileResult", "CaseResult", "PolicyError"]
