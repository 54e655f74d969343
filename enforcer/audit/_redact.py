"""Redaction: secret values never reach the audit log.

Applied to every string a record carries (resource, message, rule messages, errors,
hints, lifecycle details, reload errors and every string inside a request payload):

- credentials in URLs (``scheme://user:pass@host`` -> ``scheme://***@host``);
- ``Bearer``/``Basic`` authorization values and ``password=``/``token=``-style pairs;
- common token shapes (GitHub, GitLab, AWS access keys, Slack, OpenAI/Anthropic keys,
  Google API keys, Hugging Face, npm, JWTs, PEM private keys);
- the values of this process's secret-looking environment variables (names containing
  TOKEN, SECRET, PASSWORD, KEY, ... with values of 6+ characters), wherever they appear.

In request payloads, fields with secret-looking names (``password``, ``token``,
``authorization``, ...), the ``value`` of ``env.*`` requests and the fields the policy names
in ``mask_fields`` are replaced by ``MASK`` whatever their content.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"

_URL_CREDS = r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@'\"<>]+@"
_AUTH = r"(?P<auth>\b(?:[Bb]earer|[Bb]asic|BEARER|BASIC))\s+[A-Za-z0-9._~+/=\-]{6,}"
_KV = (r"(?P<key>\b(?i:password|passwd|secret|token|api[_-]?key|access[_-]?token|"
       r"refresh[_-]?token|client[_-]?secret|auth[_-]?token|private[_-]?key)"
       r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+")
_SHAPES = (
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bglpat-[A-Za-z0-9_\-]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\bnpm_[A-Za-z0-9]{36}",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
)
_PATTERN = re.compile("|".join([_URL_CREDS, _AUTH, _KV] + [f"(?:{s})" for s in _SHAPES]))


def _replace(m: re.Match) -> str:
    if m.group("scheme"):
        return m.group("scheme") + MASK + "@"
    if m.group("auth"):
        return m.group("auth") + " " + MASK
    if m.group("key"):
        return m.group("key") + MASK
    return MASK


_TOKEN_GUARD = re.compile(r"[A-Za-z0-9_\-]{10}")  # every token shape has such a run
_CACHE_SIZE = 8192  # redacted strings remembered (resources repeat); cleared when full

_SECRET_ENV_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|PWD$|KEY|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|DSN|"
    r"DATABASE_URL", re.I)
_SECRET_ENV_SKIP = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "XAUTHORITY", "GPG_AGENT_INFO",
                              "KEYTIMEOUT"})
_MIN_SECRET_LEN = 6  # shorter values are too likely to appear by chance in paths and names

_SECRET_KEYS = frozenset({
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_token",
    "refresh_token", "authorization", "proxy_authorization", "cookie", "set_cookie",
    "private_key", "client_secret", "credentials", "auth_token", "session", "x_api_key",
})


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "_")


class Redactor:
    """Scrubs strings and request payloads; built once per AuditLog."""

    __slots__ = ("_env_values", "_mask_names", "_mask_paths", "_cache")

    def __init__(self, mask_fields: tuple[str, ...] | list[str] = (),
                 environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        values = sorted({v for k, v in env.items()
                         if k not in _SECRET_ENV_SKIP and _SECRET_ENV_NAME.search(k)
                         and len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True)
        self._env_values = tuple(values)
        self._cache: dict[str, str] = {}
        self._mask_names = frozenset(_norm_key(f) for f in mask_fields if "." not in f)
        self._mask_paths = frozenset(tuple(_norm_key(p) for p in f.split("."))
                                     for f in mask_fields if "." in f)

    def text(self, s: str) -> str:
        """``s`` with every secret replaced by ``MASK``."""
        if not s:
            return s
        cache = self._cache
        out = cache.get(s)
        if out is None:
            out = s
            for value in self._env_values:
                if value in out:
                    out = out.replace(value, MASK)
            # cheap guards first: URL credentials need "@", key=value pairs "=" or ":",
            # authorization values and PEM blocks a space, tokens a long word
            if ("@" in out or "=" in out or ":" in out or " " in out
                    or _TOKEN_GUARD.search(out) is not None):
                out = _PATTERN.sub(_replace, out)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[s] = out
        return out

    def payload(self, value: Any, action: str = "", _path: tuple[str, ...] = ()) -> Any:
        """A redacted copy of a JSON-safe request payload (see ``_records.plain``)."""
        t = type(value)
        if t is str:
            return self.text(value)
        if t is dict:
            out: dict[Any, Any] = {}
            for k, v in value.items():
                nk = _norm_key(k)
                path = _path + (nk,)
                if (nk in _SECRET_KEYS or nk in self._mask_names or path in self._mask_paths
                        or (nk == "value" and action.startswith("env."))):
                    out[k] = MASK if v not in (None, "") else v
                else:
                    out[k] = self.payload(v, action, path)
            return out
        if t is list:
            return [self.payload(v, action, _path) for v in value]
        return value
