import textwrap

import pytest

from promptline.policy._cel import available_backends


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) -> path, with the text dedented."""
    def _write(name: str, text: str) -> str:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(p)
    return _write


@pytest.fixture(params=available_backends())
def backend(request):
    return request.param


POLICY_HEAD = "apiVersion: promptline/v1\nkind: Policy\nlayer: {layer}\n"


def policy_text(rules: str, layer: str = "org", settings: str = "") -> str:
    return POLICY_HEAD.format(layer=layer) + settings + "rules:\n" + textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ") + "\n"


@pytest.fixture(name="policy_text")
def _policy_text_fixture():
    return policy_text
