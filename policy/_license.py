"""SPDX license expressions in manifests (``license: MIT``, ``Apache-2.0 OR MIT``).

Validated and put in canonical case with ``packaging.licenses`` (the SPDX list packaging
ships); an unknown id is refused with the closest known ids as the fix.
"""

from __future__ import annotations

import difflib
import re

from pydantic_core import PydanticCustomError

_WORD = re.compile(r"[A-Za-z0-9.+-]+")
_OPERATORS = {"and", "or", "with"}


def _known() -> dict[str, str]:
    """Lower-case id -> SPDX id, licenses and exceptions, current ones only."""
    from packaging.licenses import _spdx  # the list packaging validates against
    return {k: v["id"] for table in (_spdx.LICENSES, _spdx.EXCEPTIONS)
            for k, v in table.items() if not v.get("deprecated")}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def suggest(expression: str, *, n: int = 3) -> list[str]:
    """SPDX ids close to the unknown words of ``expression`` (best first): ids the word
    begins (``GPL3`` -> ``GPL-3.0-only``), then similar spellings."""
    known = _known()
    squashed = {_squash(k): v for k, v in known.items()}
    out: list[str] = []
    for word in _WORD.findall(expression):
        low = word.lower().removesuffix("+")
        if low in _OPERATORS or low in known or low.startswith(("licenseref-", "documentref-")):
            continue
        key = _squash(low)
        prefixed = sorted((s for s in squashed if key and s.startswith(key)), key=len)[:n]
        close = difflib.get_close_matches(key, list(squashed), n=n, cutoff=0.6)
        for match in prefixed + close:
            if squashed[match] not in out:
                out.append(squashed[match])
    return out[:n]


def spdx_license(value: str) -> str:
    """``value`` as a canonical SPDX license expression; raises a pydantic error whose
    ``fix`` names the closest ids (the manifest loader turns it into file:line: ... — fix)."""
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
    try:
        return str(canonicalize_license_expression(value))
    except InvalidLicenseExpression:
        close = suggest(value)
        fix = (f"did you mean {' or '.join(f'`{c}`' for c in close)}? " if close else "") + \
            "use an SPDX license id or expression (https://spdx.org/licenses/), e.g. `MIT` or " \
            "`Apache-2.0 OR MIT`; for a license not on the list write `LicenseRef-<name>`"
        raise PydanticCustomError("spdx_license", "license `{value}` is not a valid SPDX license expression",
                                  {"value": value[:80], "fix": fix}) from None
