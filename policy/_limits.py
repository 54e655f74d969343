"""Resource limits of a plugin: what its manifest asks (``limits:``), what the policy allows
(``settings.limits``, a cap per field), and the effective values the sandboxes apply.

    limits: {memory: 512MiB, cpu_seconds: 30, processes: 16, open_files: 256, call_timeout: 60s}

``memory`` is private writable memory (RLIMIT_DATA in the process sandbox: heap and mmap'd
data — not address-space reservations, so Node/V8, Deno and the JVM, which reserve far more
address space than they use, run); in wasm it caps linear memory. ``cpu_seconds`` is CPU
time over the child's life, ``processes`` and ``open_files`` its process and descriptor
counts (process sandbox), ``call_timeout`` the wall time of one call (every sandbox).
Sizes: an integer of bytes or ``<n><unit>`` with B, KB, MB, GB (powers of 1000) or KiB, MiB,
GiB (powers of 1024). Durations: seconds as a number, or ``<n>ms|s|m|h``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}

MIN_MEMORY = 16 * 2**20          # below this not even an interpreter starts
MAX_MEMORY = 2**44
MAX_COUNT = 1 << 20
MAX_SECONDS = 7 * 24 * 3600


def parse_size(value: Any) -> int:
    """Bytes from ``512MiB``, ``2GB``, ``1048576``; ValueError naming the fix otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"a size must be bytes or text like `512MiB`, not {type(value).__name__}")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(value)
        if not m:
            raise ValueError(f"size `{value[:40]}` is not like `512MiB` or `2GB`")
        n = int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])
    if not MIN_MEMORY <= n <= MAX_MEMORY:
        raise ValueError(f"memory {n} bytes is outside {MIN_MEMORY >> 20} MiB .. {MAX_MEMORY >> 40} TiB")
    return n


def parse_duration(value: Any) -> float:
    """Seconds from ``60``, ``1.5``, ``60s``, ``500ms``, ``2m``; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"a duration must be seconds or text like `60s`, not {type(value).__name__}")
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"duration `{value[:40]}` is not like `60s`, `500ms` or `2m`")
        seconds = float(m.group(1)) * _SECONDS[m.group(2) or "s"]
    else:
        seconds = float(value)
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"duration {seconds:g} s is outside (0, {MAX_SECONDS}] seconds")
    return seconds


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, not {type(value).__name__}")
    if not 1 <= value <= MAX_COUNT:
        raise ValueError(f"{what} {value} is outside 1..{MAX_COUNT}")
    return value


class Limits(BaseModel):
    """``limits:`` of a manifest, or ``settings.limits`` of a policy (the caps). All optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    open_files: int | None = None
    call_timeout: float | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> int | None:
        return None if v is None else parse_size(v)

    @field_validator("cpu_seconds", "processes", "open_files", mode="before")
    @classmethod
    def _counts(cls, v: Any, info) -> int | None:
        if v is None:
            return None
        n = _count(v, info.field_name)
        if info.field_name == "cpu_seconds" and n > MAX_SECONDS:
            raise ValueError(f"cpu_seconds {n} is more than {MAX_SECONDS}")
        return n

    @field_validator("call_timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> float | None:
        return None if v is None else parse_duration(v)

    def tighter(self, other: Limits | None) -> Limits:
        """Field by field the smaller of ``self`` and ``other`` (None: no bound)."""
        if other is None:
            return self
        values = {}
        for name in LIMIT_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            values[name] = b if a is None else a if b is None else min(a, b)
        return Limits(**values)


LIMIT_FIELDS = ("memory", "cpu_seconds", "processes", "open_files", "call_timeout")


@dataclass(frozen=True)
class EffectiveLimits:
    """The limits a plugin runs with: asked (or the default), then capped by the policy.
    ``capped`` names the fields the policy lowered."""

    memory: int
    cpu_seconds: int
    processes: int
    open_files: int
    call_timeout: float
    capped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"memory": self.memory, "cpu_seconds": self.cpu_seconds, "processes": self.processes,
                "open_files": self.open_files, "call_timeout": self.call_timeout, "capped": list(self.capped)}

    def describe(self) -> list[str]:
        """One line per limit, for people (``plugin info``)."""
        def note(name: str) -> str:
            return " (capped by policy)" if name in self.capped else ""
        return [f"memory: {format_size(self.memory)}{note('memory')}",
                f"cpu_seconds: {self.cpu_seconds}{note('cpu_seconds')}",
                f"processes: {self.processes}{note('processes')}",
                f"open_files: {self.open_files}{note('open_files')}",
                f"call_timeout: {self.call_timeout:g} s{note('call_timeout')}"]


# Enough for Node, Deno and JVM servers: memory is RLIMIT_DATA, not address space.
DEFAULT_LIMITS = EffectiveLimits(memory=4 * 2**30, cpu_seconds=600, processes=64, open_files=1024,
                                 call_timeout=30.0)


def effective_limits(asked: Limits | None, caps: Limits | None) -> EffectiveLimits:
    """What the manifest asks (else the default), lowered to the policy's caps."""
    asked = asked or Limits()
    values: dict[str, Any] = {}
    capped = []
    for name in LIMIT_FIELDS:
        want = getattr(asked, name)
        value = getattr(DEFAULT_LIMITS, name) if want is None else want
        cap = getattr(caps, name) if caps is not None else None
        if cap is not None and value > cap:
            value = cap
            capped.append(name)
        values[name] = value
    return EffectiveLimits(**values, capped=tuple(capped))


def format_size(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


__all__ = ["DEFAULT_LIMITS", "EffectiveLimits", "LIMIT_FIELDS", "Limits", "effective_limits", "format_size",
           "parse_duration", "parse_size"]
