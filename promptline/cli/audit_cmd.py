"""`promptline audit show|tail|verify|stats`: read and check the audit log.

Exit codes (stable): 0 success (for verify: the chain is whole); 1 verify found a break
(tampering, a torn tail, a corrupt or foreign file); 2 the log cannot be read or the
command line is wrong.
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import time

import click

from promptline.enforcer.audit import (
    KINDS,
    AuditError,
    canonical,
    default_log_path,
    open_log_file,
    parse_line,
    parse_when,
    read_records,
    select,
    stats,
    verify,
)

EXIT_BROKEN = 1
EXIT_UNREADABLE = 2
_FOLLOW_POLL = 0.2  # seconds between checks of the log in `tail -f`
_MAX_COUNT = sys.maxsize  # --limit, -n, --top: anything larger is refused by click
_MAX_POLICY_BYTES = 16 * 1024 * 1024  # a --policy or --rules-file larger than this is refused
_MAX_YAML_DEPTH = 100  # nesting a --policy file may have (the policy loader's own limit is lower)

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _safe(text: object) -> str:
    """``text`` with control and bidi characters shown as escapes (plugins choose names)."""
    s = "" if text is None else str(text)
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)


def _fail(message: str, code: int = EXIT_UNREADABLE) -> None:
    click.echo(f"error: {_safe(message)}", err=True)
    sys.exit(code)


def _log_path(log: str | None) -> str:
    if not log:
        return default_log_path()
    if "\0" in log:
        _fail("--log: a path cannot contain a NUL character: pass the log file's path")
    return os.path.abspath(os.path.expanduser(log))


_log_option = click.option(
    "--log", "log", metavar="PATH", default=None,
    help="Audit log file [default: $PROMPTLINE_AUDIT_LOG, else the user state dir].")


def _filters(fn):
    options = [
        click.option("--plugin", metavar="GLOB", help="Plugin id (glob)."),
        click.option("--action", metavar="GLOB", help="Action, e.g. fs.read or 'net.*'."),
        click.option("--decision", type=click.Choice(["allow", "deny", "ask"]),
                     help="Verdict."),
        click.option("--rule", metavar="ID", help="Records citing this rule id."),
        click.option("--kind", type=click.Choice(list(KINDS)),
                     help="Record kind."),
        click.option("--since", metavar="TIME", help="ISO 8601 (UTC if no zone) or an age: "
                     "30m, 2h, 7d."),
        click.option("--until", metavar="TIME", help="Same forms as --since."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _filter_args(kw: dict) -> dict:
    out = {k: kw.pop(k) for k in ("plugin", "action", "decision", "rule", "kind")}
    for bound in ("since", "until"):
        value = kw.pop(bound)
        if value is not None:
            try:
                value = parse_when(value)
            except ValueError as exc:
                raise click.BadParameter(_safe(exc), param_hint=f"--{bound}") from None
        out[bound] = value
    return out


def _records(path: str):
    try:
        yield from read_records(path)
    except AuditError as exc:
        _fail(str(exc))


# -- rendering ------------------------------------------------------------------------------

def _what(r: dict) -> tuple[str, str, str, str]:
    """(action, resource, outcome, rule-or-detail) columns for any record kind."""
    kind = r.get("kind")
    if kind == "decision":
        outcome = r.get("decision", "")
        if r.get("would_deny"):
            outcome += " (would deny)"
        return r.get("action", ""), r.get("resource", ""), outcome, r.get("rule") or \
            r.get("decided_by", "")
    if kind == "lifecycle":
        return f"plugin.{r.get('event', '')}", "", "", r.get("detail", "")
    if kind == "policy_reload":
        return "policy.reload", r.get("policy_version", ""), \
            "ok" if r.get("ok") else "failed", r.get("error", "")
    if kind == "plugin_reload":
        return "plugin.reload", "", "ok" if r.get("ok") else "failed", r.get("error", "")
    return kind or "", "", "", r.get("message", "")


_PIPE_WIDTH = 200  # table width when stdout is not a terminal and $COLUMNS is unset


def _console():
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=_PIPE_WIDTH)


def _width() -> int:
    """Columns to fit: $COLUMNS, else the terminal's width, else _PIPE_WIDTH (a pipe)."""
    import shutil

    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(int(env), 40)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size((80, 24)).columns, 40)
    return _PIPE_WIDTH


def _wide_table(records: list[dict]) -> None:
    """Every field of every record, long values folded onto more lines (``--wide``)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("seq", "time (UTC)", "plugin", "action", "resource", "decision", "rule / detail"):
        table.add_column(col, overflow="fold", no_wrap=col in ("seq", "time (UTC)"))
    styles = {"deny": "red", "ask": "yellow", "allow": "green", "failed": "red"}
    for r in records:
        action, resource, outcome, rule = _what(r)
        p = r.get("plugin")
        plugin = f"{p.get('id', '')}@{p.get('version', '')}" if isinstance(p, dict) else ""
        table.add_row(str(r.get("seq", "")), _safe(r.get("time", "")[:19].replace("T", " ")),
                      Text(_safe(plugin)), Text(_safe(action)), Text(_safe(resource)),
                      Text(_safe(outcome), style=styles.get(outcome.split(" ")[0], "")),
                      Text(_safe(rule)))
    _console().print(table)


# One line per record: (header, minimum, maximum) cells per column; the last column takes
# what is left. When it would get less than _LAST_MIN, `seq` is dropped, then `plugin` and
# `action` shrink (the longest first) to their minimum. Values are cut in the middle with
# "…" (a path keeps its start and its file name); the deciding rule is kept whole.
_LINE_COLUMNS = (("seq", 3, 9), ("time", 8, 14), ("kind", 4, 9), ("decision", 8, 10),
                 ("plugin", 12, 24), ("action", 10, 16))
_SHRINK = (4, 5)     # plugin, action
_LAST = "resource [rule] / detail"
_LAST_MIN = 26
_KIND_SHORT = {"policy_reload": "reload"}   # the rest fit
_DECISION_STYLE = {"deny": "red", "ask": "yellow", "allow": "green", "failed": "red", "would-deny": "yellow"}


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` terminal cells, cut in the middle with "…"."""
    if _cells(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    from rich.cells import cell_len

    head_w = width // 2
    tail_w = width - 1 - head_w
    head, used = "", 0
    for ch in text:
        if used + cell_len(ch) > head_w:
            break
        head, used = head + ch, used + cell_len(ch)
    tail, used = "", 0
    for ch in reversed(text):
        if used + cell_len(ch) > tail_w:
            break
        tail, used = ch + tail, used + cell_len(ch)
    return head + "…" + tail


def _line_cells(r: dict, same_day: bool) -> tuple[list[str], str, str]:
    """(fixed cells, last column, the suffix of the last column kept whole)."""
    action, resource, outcome, rule = _what(r)
    kind = str(r.get("kind", ""))
    if r.get("would_deny"):
        outcome = "would-deny"
    suffix = ""
    if kind == "decision" and rule:
        suffix = f" [{rule}]"
    elif rule:
        resource = f"{resource} {rule}".strip()
    if kind == "lifecycle":
        action = action.removeprefix("plugin.")     # the kind says it is the plugin's event
    elif kind == "policy_reload":
        action = ""
    p = r.get("plugin")
    plugin = str(p.get("id", "")) if isinstance(p, dict) else ""
    stamp = str(r.get("time", ""))
    when = stamp[11:19] if same_day else stamp[5:19].replace("T", " ")
    cells = (r.get("seq", ""), when, _KIND_SHORT.get(kind, kind), outcome, plugin, action)
    return [_safe(x) for x in cells], _safe(resource), _safe(suffix)


def _fit(rows: list[list[str]], width: int) -> list[int | None]:
    """Widths of the fixed columns (None: dropped) so that they, one space between
    columns and the last column fit in ``width``."""
    natural = [max([_cells(h)] + [_cells(row[i]) for row in rows]) for i, (h, _, _) in enumerate(_LINE_COLUMNS)]
    widths: list[int | None] = [max(lo, min(n, hi)) for n, (_, lo, hi) in zip(natural, _LINE_COLUMNS)]

    def room() -> int:
        kept = [w for w in widths if w is not None]
        return width - sum(kept) - len(kept)

    if room() < _LAST_MIN:
        widths[0] = None
    while room() < _LAST_MIN:
        i = max(_SHRINK, key=lambda j: (widths[j] or 0) - _LINE_COLUMNS[j][1])
        current = widths[i] or 0
        if current <= _LINE_COLUMNS[i][1]:
            break
        widths[i] = current - 1
    return widths


def _lines(records: list[dict], *, header: bool = True) -> None:
    """One line per record, fitted to the terminal (``--wide`` or ``--json`` for all)."""
    days = {str(r.get("time", ""))[:10] for r in records}
    same_day = len(days) == 1
    rows = [_line_cells(r, same_day) for r in records]
    width = _width()
    widths = _fit([cells for cells, _, _ in rows], width)
    kept = [w for w in widths if w is not None]
    room = max(width - sum(kept) - len(kept), 1)
    colour = sys.stdout.isatty()

    def render(cells: list[str], last: str, suffix: str, bold: bool = False) -> str:
        out = []
        for i, w in enumerate(widths):
            if w is None:
                continue
            cell = _cut(cells[i], w)
            gap = " " * (w - _cells(cell))
            pad = gap + cell if i == 0 else cell + gap
            if colour and i == 3 and cells[i] in _DECISION_STYLE:
                pad = click.style(pad, fg=_DECISION_STYLE[cells[i]])
            out.append(pad)
        tail = _cut(suffix, max(room * 2 // 3, 1)) if suffix else ""
        out.append(_cut(last, max(room - _cells(tail), 1)) + tail)
        line = " ".join(out).rstrip()
        return click.style(line, bold=True) if bold and colour else line

    if header:
        if same_day and days != {""}:
            click.echo(f"{_safe(next(iter(days)))} (times in UTC)")
        click.echo(render([h for h, _, _ in _LINE_COLUMNS], _LAST, "", bold=True))
    for cells, last, suffix in rows:
        click.echo(render(cells, last, suffix))


def _print(records: list[dict], as_json: bool, wide: bool = False, header: bool = True) -> None:
    if as_json:
        for r in records:
            click.echo(canonical(r))
    elif not records:
        if header:
            click.echo("no matching records", err=True)
    elif wide:
        _wide_table(records)
    else:
        _lines(records, header=header)


# -- commands -------------------------------------------------------------------------------

@click.group("audit")
def audit_group() -> None:
    """Read and check the audit log (hash-chained JSON Lines).

    \b
      promptline audit verify                     is the chain whole?
      promptline audit show --decision deny       what was refused
      promptline audit show --json | jq .         machine-readable
      promptline audit tail -f                    follow new records
      promptline audit stats --policy org.yaml    counts, top refusals, dead rules
    """


@audit_group.command("show")
@_log_option
@_filters
@click.option("--limit", type=click.IntRange(min=1, max=_MAX_COUNT),
              help="Only the last N matching records.")
@click.option("--wide", is_flag=True, help="Every field (version, full time, rule), long values folded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line (for jq).")
def show_cmd(log: str | None, limit: int | None, wide: bool, as_json: bool, **kw) -> None:
    """Show records, oldest first: one line per record fitted to the terminal (time,
    kind, decision, plugin, action, resource with the deciding rule or detail), every
    field with --wide, or JSON Lines."""
    flt = _filter_args(kw)
    matched = select(_records(_log_path(log)), **flt)
    records = list(collections.deque(matched, maxlen=limit) if limit else matched)
    _print(records, as_json, wide)


@audit_group.command("tail")
@_log_option
@_filters
@click.option("-n", "--lines", "count", type=click.IntRange(min=0, max=_MAX_COUNT), default=10,
              show_default=True, help="Show the last N matching records first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing records as they arrive.")
@click.option("--wide", is_flag=True, help="Every field, long values folded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
def tail_cmd(log: str | None, count: int, follow: bool, wide: bool, as_json: bool, **kw) -> None:
    """Show the last records; with -f, follow the log across rotations."""
    flt = _filter_args(kw)
    path = _log_path(log)
    if os.path.exists(path) or not follow:
        last = collections.deque(select(_records(path), **flt), maxlen=count) if count else []
        if last:
            _print(list(last), as_json, wide)
    if follow:
        try:
            _follow(path, flt, as_json, wide)
        except KeyboardInterrupt:
            pass


def _follow(path: str, flt: dict, as_json: bool, wide: bool = False) -> None:
    """Print records as they are appended, across rotations (polling; no extra deps)."""
    from promptline.enforcer.audit import rotated_files

    def emit_lines(data: bytes) -> bytes:
        *whole, rest = data.split(b"\n")
        for line in whole:
            rec = parse_line(line)
            if rec is not None and any(True for _ in select([rec], **flt)):
                _print([rec], as_json, wide, header=False)
        sys.stdout.flush()
        return rest if len(rest) <= _MAX_POLICY_BYTES else b""

    def open_log(p: str):
        try:
            return open_log_file(p)
        except AuditError as exc:
            if os.path.lexists(p):
                _fail(str(exc))
            raise FileNotFoundError(p) from None

    def ident(st: os.stat_result) -> tuple[int, int]:
        return st.st_dev, st.st_ino

    f = None
    cur = None
    buf = b""
    try:
        f = open_log(path)
        f.seek(0, os.SEEK_END)  # what is there was printed by the caller
        cur = ident(os.fstat(f.fileno()))
    except FileNotFoundError:
        pass
    while True:
        if f is not None:
            chunk = f.read()
            if chunk:
                buf = emit_lines(buf + chunk)
                continue
        time.sleep(_FOLLOW_POLL)
        try:
            now = ident(os.stat(path))
        except FileNotFoundError:
            now = None
        if now == cur and f is not None:
            continue
        # rotated (or created): finish the old file, then every newer rotated file, then
        # the new active file, each from its start
        newer: list[str] = []
        if cur is not None:
            found = False
            for _n, rp in rotated_files(path):
                try:
                    rid = ident(os.stat(rp))
                except FileNotFoundError:
                    continue
                if found:
                    newer.append(rp)
                found = found or rid == cur
        if f is not None:
            buf = emit_lines(buf + f.read())
            f.close()
            f = None
        for rp in newer:
            try:
                with open_log(rp) as g:
                    buf = emit_lines(b"" + g.read())
            except FileNotFoundError:
                pass
        buf = b""
        if now is not None:
            try:
                f = open_log(path)
                cur = ident(os.fstat(f.fileno()))
            except FileNotFoundError:
                f, cur = None, None


@audit_group.command("verify")
@_log_option
@click.option("--anchor", metavar="SEQ:HASH",
              help="A record's seq and hash kept elsewhere (from an earlier verify): the "
                   "log must still hold it unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(log: str | None, anchor: str | None, as_json: bool) -> None:
    """Check the hash chain; exit 1 naming the first broken record."""
    path = _log_path(log)
    anchor_value = None
    if anchor:
        m = re.fullmatch(r"(\d+):([0-9a-f]{64})", anchor.strip())
        if not m:
            raise click.BadParameter("use SEQ:HASH, e.g. 1042:3fa4… (64 hex digits), as "
                                     "printed by `audit verify`", param_hint="--anchor")
        anchor_value = (int(m.group(1)), m.group(2))
    try:
        report = verify(path, anchor=anchor_value)
    except AuditError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        sys.exit(0 if report.ok else EXIT_BROKEN)
    for note in report.notes:
        click.echo(f"note: {_safe(note)}", err=True)
    if not report.ok:
        click.echo(f"error: {_safe(report.problem)}", err=True)
        sys.exit(EXIT_BROKEN)
    nfiles = len(report.files)
    if report.records == 0:
        click.echo(f"ok: `{path}` is empty")
        return
    click.echo(f"ok: {report.records} records in {nfiles} file{'s' if nfiles > 1 else ''}, "
               f"seq {report.first_seq}..{report.last_seq}")
    click.echo(f"head: {report.last_seq}:{report.head_hash}  (keep it; check later with "
               f"--anchor)")


def _read_small(path: str, what: str) -> bytes:
    """A --policy/--rules-file file's bytes: a regular file, not too large."""
    try:
        with open_log_file(path) as f:
            data = f.read(_MAX_POLICY_BYTES + 1)
    except AuditError:
        if os.path.isdir(path):
            _fail(f"`{path}` is a directory: pass a file to {what}")
        _fail(f"cannot read `{path}`: pass a readable regular file to {what}")
    if len(data) > _MAX_POLICY_BYTES:
        _fail(f"`{path}` is larger than {_MAX_POLICY_BYTES >> 20} MiB: pass the policy file "
              f"itself to {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        _fail(f"{path}:{line}: not UTF-8 text — save the file as UTF-8")


def _yaml_docs(path: str) -> list:
    """The YAML documents of a --policy file, refusing aliases and deep nesting."""
    import yaml

    text = _read_small(path, "--policy")
    try:
        depth = 0
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.AliasEvent):
                m = ev.start_mark
                _fail(f"{path}:{m.line + 1}:{m.column + 1}: YAML aliases (`*name`) are not "
                      f"allowed in policy files — write the value out")
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > _MAX_YAML_DEPTH:
                    m = ev.start_mark
                    _fail(f"{path}:{m.line + 1}:{m.column + 1}: nested more than "
                          f"{_MAX_YAML_DEPTH} levels deep — flatten the file")
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        _fail(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc} — fix the "
              f"syntax there")
    except RecursionError:
        _fail(f"{path}: nested too deeply — flatten the file")


def _rule_ids_from_files(paths: tuple[str, ...], rules_file: str | None) -> list[str] | None:
    if not paths and not rules_file:
        return None
    ids: list[str] = []
    if rules_file:
        text = _read_small(rules_file, "--rules-file")
        ids += [ln.strip() for ln in text.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    for p in paths:
        found = False
        for doc in _yaml_docs(p):
            rules = doc.get("rules") if isinstance(doc, dict) else None
            if isinstance(rules, list):
                found = True
                ids += [str(r["id"]) for r in rules if isinstance(r, dict) and "id" in r
                        and isinstance(r["id"], (str, int))]
        if not found:
            _fail(f"`{p}` has no `rules:` list: pass policy files to --policy")
    return ids


@audit_group.command("stats")
@_log_option
@_filters
@click.option("--policy", "policies", multiple=True, metavar="FILE",
              help="Policy file(s) whose rule ids are checked for dead rules (repeatable).")
@click.option("--rules-file", metavar="FILE", help="A file of rule ids, one per line.")
@click.option("--top", type=click.IntRange(min=1, max=_MAX_COUNT), default=10, show_default=True,
              help="How many refused resources to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def stats_cmd(log: str | None, policies: tuple[str, ...], rules_file: str | None, top: int,
              as_json: bool, **kw) -> None:
    """Counts by plugin x action x decision, top refusals, rule hits, dead rules."""
    flt = _filter_args(kw)
    known = _rule_ids_from_files(policies, rules_file)
    st = stats(select(_records(_log_path(log)), **flt), known_rule_ids=known, top=top)
    from promptline.enforcer.audit import shipping_state
    shipping = shipping_state(_log_path(log))
    if as_json:
        click.echo(json.dumps(dict(st.to_dict(), shipping=shipping), indent=2, ensure_ascii=False))
        return
    from rich.table import Table
    from rich.text import Text

    con = _console()
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(st.by_kind.items()))
    con.print(Text(f"{st.records} records ({kinds or 'none'})"))
    if st.dropped:
        con.print(Text(f"{st.dropped} allow record(s) were dropped by back-pressure",
                       style="yellow"))
    for name, sh in shipping.items():
        con.print(Text(f"shipping to {_safe(name)}: forwarded {sh.get('forwarded', 0)}, delayed {sh.get('delayed', 0)}, "
                       f"dropped {sh.get('dropped', 0)}, queued {sh.get('queued', 0)}, failures {sh.get('failures', 0)}"
                       + (f", last error {_safe(str(sh['last_error']))}" if sh.get("last_error") else "")
                       + f" (as of {_safe(str(sh.get('updated', '?')))})",
                       style="yellow" if sh.get("dropped") or sh.get("last_error") else ""))
    if st.matrix:
        t = Table(title="decisions", box=None, header_style="bold")
        for c in ("plugin", "action", "decision", "count"):
            t.add_column(c, justify="right" if c == "count" else "left")
        for p, a, d, n in st.matrix:
            t.add_row(Text(_safe(p)), Text(_safe(a)), Text(_safe(d)), str(n))
        con.print(t)
    if st.refused:
        t = Table(title="most refused", box=None, header_style="bold")
        for c in ("action", "resource", "denies"):
            t.add_column(c, justify="right" if c == "denies" else "left", overflow="fold")
        for a, res, n in st.refused:
            t.add_row(Text(_safe(a)), Text(_safe(res)), str(n))
        con.print(t)
    if st.rule_hits:
        t = Table(title="rule hits", box=None, header_style="bold")
        t.add_column("rule")
        t.add_column("decisions", justify="right")
        for rid, n in st.rule_hits:
            t.add_row(Text(_safe(rid)), str(n))
        con.print(t)
    if st.dead_rules is None:
        con.print(Text("dead rules: not checked (pass --policy FILE or --rules-file FILE)",
                       style="dim"))
    elif st.dead_rules:
        con.print(Text("dead rules (never cited by a logged decision): "
                       + ", ".join(_safe(r) for r in st.dead_rules), style="yellow"))
        if not st.allows_logged:
            con.print(Text("note: the log holds no allow decisions (log_allows is off?), so "
                           "allow rules look dead", style="dim"))
    else:
        con.print(Text("dead rules: none"))
