"""`promptline policy check|explain|test|show`."""

from __future__ import annotations

import json
import os

import click

from promptline.enforcer import canonical_request
from promptline.policy import (
    PolicyError,
    Request,
    available_backends,
    check_test_file,
    file_kind,
    load_policy_set,
    run_test_file,
    uncovered_rules,
)

from ._common import EXIT_FAILED, console, fail

DEFAULT_POLICY_ENV = "PROMPTLINE_POLICY"


def _default_policies() -> list[str]:
    env = os.environ.get(DEFAULT_POLICY_ENV)
    if env:
        return [p for p in env.split(os.pathsep) if p]
    here = os.path.join(os.path.dirname(__file__), "..", "..", "policies", "default.yaml")
    return [os.path.normpath(here)] if os.path.exists(here) else []


_backend_option = click.option("--backend", type=click.Choice(["auto", "cel-python", "cel-expr-python"]),
                               default="auto", show_default=True, help="CEL backend to compile with.")


@click.group("policy")
def policy_group() -> None:
    """Validate, explain and test policy files.

    \b
    Examples:
      promptline policy check policies/default.yaml
      promptline policy explain --plugin notes --action fs.read --path ~/.ssh/id_rsa
      promptline policy test policies/*.test.yaml --coverage
    """


@policy_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--manifest", "manifests", multiple=True, type=click.Path(), help="plugin.yaml to compile too.")
@click.option("--all-backends", is_flag=True, help="Compile with every installed CEL backend.")
@_backend_option
def check_cmd(files, manifests, all_backends, backend) -> None:
    """Validate FILES by their `kind:` (like `opa check`); exit 1 on the first error.

    Policy files (`kind: Policy`, or directories of them) are compiled together with the
    manifests; policy test files (`kind: PolicyTest`) are validated — schema, their own
    policies and every case's request — without running them (`policy test` runs them).

    \b
    Example:
      promptline policy check policies/*.yaml
    """
    backends = available_backends() if all_backends else [None if backend == "auto" else backend]
    policies, tests = [], []
    for f in files:
        try:
            kind = "Policy" if os.path.isdir(f) else file_kind(f)
        except PolicyError as exc:
            fail(str(exc))
        if kind == "PolicyTest":
            tests.append(f)
        elif kind == "Policy":
            policies.append(f)
        else:
            fail(f"{f}: `kind: {kind}` is neither Policy nor PolicyTest — check the file, or leave it out")
    for be in backends:
        if policies or manifests:
            try:
                ps = load_policy_set(policies, manifests, backend=be)
            except PolicyError as exc:
                fail(str(exc))
            click.echo(f"ok: {len(ps.rules)} rules from {len(ps.sources)} file(s), "
                       f"policy version {ps.version}, backend {ps.backend.name}")
        for t in tests:
            try:
                n = check_test_file(t, backend=be)
            except PolicyError as exc:
                fail(str(exc))
            click.echo(f"ok: {t}: policy test with {n} case(s)")


def _request_from(plugin, action, path, host, port, scheme, url, name, argv, tool, args) -> Request:
    try:
        if action == "tool.call":
            return Request.tool_call(plugin, tool or "", json.loads(args) if args else {})
        return Request(action, plugin, path=path or "", host=host or "", port=port or 0,
                       scheme=scheme or "", url=url or "", name=name or "",
                       argv=tuple(argv.split()) if argv else ())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@policy_group.command("explain")
@click.option("--plugin", required=True, help="Plugin id making the request.")
@click.option("--action", required=True, help="fs.read, fs.write, net.connect, env.read, ...")
@click.option("--path")
@click.option("--host")
@click.option("--port", type=int)
@click.option("--scheme")
@click.option("--url")
@click.option("--name", help="Environment variable name.")
@click.option("--argv", help="Command line for process.exec, space-separated.")
@click.option("--tool")
@click.option("--args", help="Tool arguments as JSON.")
@click.option("--policy", "policies", multiple=True, type=click.Path(),
              help=f"Policy file or dir (repeatable; default ${DEFAULT_POLICY_ENV} or the shipped default).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(), help="plugin.yaml of granted plugins.")
@click.option("--all", "show_all", is_flag=True, help="Also list rules that did not apply.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_backend_option
def explain_cmd(plugin, action, path, host, port, scheme, url, name, argv, tool, args, policies,
                manifests, show_all, as_json, backend) -> None:
    """Show the decision for one request and every rule considered."""
    request = _request_from(plugin, action, path, host, port, scheme, url, name, argv, tool, args)
    try:
        ps = load_policy_set(policies or _default_policies(), manifests,
                             backend=None if backend == "auto" else backend)
    except PolicyError as exc:
        fail(str(exc))
    given = {k: v for k, v in (("path", path), ("host", host), ("port", port), ("scheme", scheme),
                               ("url", url), ("name", name), ("argv", argv), ("tool", tool),
                               ("args", args)) if v}
    request = canonical_request(request)      # resolved as check() and the audit hook resolve it
    ex = ps.explain(request)
    d = ex.decision
    if as_json:
        click.echo(json.dumps({"given": given, "request": request.to_dict(),
                               "decision": d.to_dict(),
                               "rules": [{"id": t.rule.id, "origin": t.rule.origin, "effect": t.rule.effect.value,
                                          "considered": t.considered, "matched": t.matched, "why": t.why}
                                         for t in ex.traces if t.considered or show_all]}, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table
    con = console(140)
    colour = {"allow": "green", "deny": "red", "ask": "yellow"}[d.verdict.value]
    con.print(f"[bold {colour}]{d.verdict.value.upper()}[/] {escape(request.action)} "
              f"{escape(request.resource)} for plugin `{escape(request.plugin)}` — {escape(d.reason())}")
    shown = ", ".join(f"{k}={v!r}" for k, v in request.to_dict().items() if k not in ("action", "plugin"))
    if shown:   # the canonical form the rules saw (DESIGN.md §5a)
        con.print(f"judged as: {escape(shown)}")
    if d.hint:
        con.print(f"to grant it, add to the plugin's manifest: {escape(d.hint)}")
    for err in d.errors:
        con.print(f"[red]evaluation error:[/] {escape(err)}")
    table = Table("rule", "effect", "layer", "origin", "result", "why")
    for t in ex.traces:
        if not (t.considered or show_all):
            continue
        result = "[bold]match[/]" if t.matched else ("no match" if t.considered else "skipped")
        table.add_row(escape(t.rule.id), t.rule.effect.value, t.rule.layer, escape(t.rule.origin), result, escape(t.why))
    con.print(table)
    con.print(f"policy version {ps.version}, backend {ps.backend.name}")


@policy_group.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--coverage", is_flag=True, help="List policy rules that no case decided.")
@click.option("--verbose", "-v", is_flag=True, help="Show passing cases too.")
@_backend_option
def test_cmd(files, coverage, verbose, backend) -> None:
    """Run policy test files (kind: PolicyTest); exit 1 if any case fails."""
    results = []
    total = failed = 0
    for f in files:
        try:
            tf = run_test_file(f, backend=None if backend == "auto" else backend)
        except PolicyError as exc:
            fail(str(exc))
        results.append(tf)
        for r in tf.results:
            total += 1
            if not r.passed:
                failed += 1
                click.echo(f"FAIL {r.origin}: {r.name}: expected {r.expected}, got {r.got} ({r.detail})")
            elif verbose:
                click.echo(f"PASS {r.origin}: {r.name}")
    if coverage:
        missing = uncovered_rules(results)
        click.echo(f"coverage: {len(missing)} rule(s) decided no case")
        for rid, origin in missing:
            click.echo(f"  {rid} ({origin})")
    click.echo(f"{total - failed} passed, {failed} failed")
    if failed:
        raise SystemExit(EXIT_FAILED)


def _bundle_state(config_path: str | None) -> dict | None:
    """The org bundle a host with this config keeps: its state and the policy files in force."""
    from promptline.loaders import BundleUpdater, LoaderError, config_from_file
    try:
        cfg = config_from_file(config_path)
    except LoaderError as exc:
        fail(str(exc))
    if cfg is None:
        return None
    updater = BundleUpdater(None, cfg)
    files = updater.load_cached() if (updater.cache / "last-good.bundle").exists() else []
    state = dict(updater.state, url=cfg.url, files=files)
    state.setdefault("cache_dir", str(updater.cache))
    return state


def _last_reload(log_path: str | None) -> dict | None:
    """The newest policy_reload record of the audit log, if any (what a running host did)."""
    from promptline.enforcer.audit import AuditError, default_log_path, read_records
    path = log_path or default_log_path()
    if not os.path.exists(path):
        return None
    try:
        reloads = [r for r in read_records(path) if r.get("kind") == "policy_reload"]
    except (AuditError, OSError):
        return None
    return reloads[-1] if reloads else None


@policy_group.command("show")
@click.option("--policy", "policies", multiple=True, type=click.Path(), help="Policy file or dir (repeatable).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path())
@click.option("--audit-log", "audit_log", type=click.Path(),
              help="Audit log of the running host, to report its last policy reload.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file with a `bundle:` section (default $PROMPTLINE_CONFIG).")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(policies, manifests, audit_log, config_path, as_json) -> None:
    """Show the effective policy: version, settings and every compiled rule, whether the
    running host's last reload failed (then the previous policy is still in force), and the
    org bundle's revision, last fetch and last error."""
    bundle = _bundle_state(config_path)
    if bundle is not None and not as_json:
        click.echo(f"org bundle {bundle['url']}: revision {bundle.get('revision', 'none')}, "
                   f"last fetch {bundle.get('last_fetch', 'never')}, "
                   f"last error {bundle.get('last_error') or 'none'}")
    last = _last_reload(audit_log)
    if last is not None and not last.get("ok") and not as_json:
        click.echo(f"last reload FAILED at {last.get('time')}: {last.get('error')}\n"
                   f"  the host keeps policy version {last.get('policy_version') or '?'} in force until the next good save",
                   err=True)
    try:
        files = list(policies or _default_policies())
        if bundle is not None and not policies:
            files = bundle["files"] + files
        ps = load_policy_set(files, manifests)
    except PolicyError as exc:
        fail(str(exc))
    rules = [{"id": r.id, "effect": r.ref.effect.value, "layer": r.ref.layer, "origin": r.ref.origin,
              "actions": sorted(r.actions), "plugins": list(r.plugins), "mode": r.ref.mode, "cel": r.cel}
             for r in ps.rules]
    if as_json:
        from dataclasses import asdict
        click.echo(json.dumps({"version": ps.version, "backend": ps.backend.name, "sources": list(ps.sources),
                               "last_reload": last, "bundle": bundle,
                               "settings": {k: (list(v) if isinstance(v, tuple) else dict(v) if hasattr(v, "items") else v)
                                            for k, v in asdict(ps.settings).items()},
                               "rules": rules}, indent=2))
        return
    click.echo(f"policy version {ps.version} ({ps.backend.name}) from {', '.join(ps.sources)}")
    for r in rules:
        click.echo(f"{r['effect']:5} {r['id']:40} {r['layer']:8} {','.join(r['actions'])[:40]:40} {r['origin']}")


# -- org policy bundles ---------------------------------------------------------------


@policy_group.group("bundle")
def bundle_group() -> None:
    """Signed org policy bundles for fleets: build, sign, verify.

    \b
      promptline policy bundle build org-policy/ -o org.bundle --revision 42
      promptline policy bundle sign org.bundle --key org-bundles
      promptline policy bundle verify org.bundle --key ed25519:...
    """


@bundle_group.command("build")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--revision", type=click.IntRange(min=1), default=None,
              help="Monotonic revision (default: the current Unix time).")
def bundle_build_cmd(directory, output, revision) -> None:
    """Pack DIRECTORY's policy files (*.yaml) and keys/*.pub with a manifest of SHA-256 digests."""
    import time

    from promptline.enforcer import write_atomic
    from promptline.loaders import BundleError, build_bundle, read_bundle
    revision = revision or int(time.time())
    try:
        data = build_bundle(directory, revision)
        bundle = read_bundle(data)
    except BundleError as exc:
        fail(str(exc))
    try:   # a bundle that does not compile is never published
        load_policy_set([os.path.join(directory, n.removeprefix("policies/")) for n in bundle.policy_names])
    except PolicyError as exc:
        fail(str(exc))
    write_atomic(output, data)
    click.echo(f"built {output}: revision {revision}, {len(bundle.policy_names)} policy file(s), "
               f"{len(bundle.trusted_keys)} trusted key(s), unsigned — sign it with `promptline policy bundle sign`")


@bundle_group.command("sign")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", help="Private key (a path or a key name in the keys dir).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: in place).")
def bundle_sign_cmd(bundle_file, key, output) -> None:
    """Sign BUNDLE_FILE with an ed25519 key from `promptline keys generate`."""
    from promptline.enforcer import write_atomic
    from promptline.loaders import BundleError, SignatureError, load_private_key, read_bundle, sign_bundle

    from .keys_cmd import resolve_key
    try:
        private = load_private_key(resolve_key(key))
        with open(bundle_file, "rb") as fh:
            signed = sign_bundle(fh.read(), private)
        bundle = read_bundle(signed)
    except (BundleError, SignatureError, OSError) as exc:
        fail(f"{bundle_file}: {exc}")
    write_atomic(output or bundle_file, signed)
    from promptline.loaders import key_id
    click.echo(f"signed {output or bundle_file}: revision {bundle.revision} by key {key_id(private.public_key())}")


@bundle_group.command("verify")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "keys", multiple=True, required=True,
              help="Trusted public key: `ed25519:...` or a .pub file (repeatable).")
def bundle_verify_cmd(bundle_file, keys) -> None:
    """Check BUNDLE_FILE's signature and every file's digest; exit 1 if anything is off."""
    from promptline.loaders import BundleError, SignatureError, verify_bundle
    trusted = []
    for k in keys:
        if not k.startswith("ed25519:"):
            try:
                with open(os.path.expanduser(k), encoding="ascii") as fh:
                    k = fh.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"cannot read key file `{k}`: {exc}")
        trusted.append(k)
    try:
        with open(bundle_file, "rb") as fh:
            bundle = verify_bundle(fh.read(), trusted)
    except (BundleError, SignatureError, OSError) as exc:
        fail(f"{bundle_file}: {exc}")
    click.echo(f"ok: {bundle_file} revision {bundle.revision}, signed by {bundle.key_id}, "
               f"{len(bundle.policy_names)} policy file(s), digest {bundle.digest[:16]}")
