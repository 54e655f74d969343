"""The plugin registry: install, update, remove and publish plugins.

    from promptline.loaders import Registry, publish
    entry = publish("my-plugin", "/srv/index", key="~/.config/promptline/keys/me.pem")
    reg = Registry("~/.config/promptline/plugins", policy_files=["policies/default.yaml"],
                   index="https://plugins.example.com/")
    with reg.prepare_install("my-plugin") as plan:      # fetched, verified, not installed
        for check in plan.checks: print(check.capability, check.verdict)
        plan.commit(approved=decide_approval(plan, yes=False, confirm=ask_the_user))
    reg.update("my-plugin", confirm=ask_the_user)
    reg.remove("my-plugin", manager=pm)

Sources, archives, the index format and the ``--yes`` rule are described in the
docstrings of ``_sources``, ``_archive``, ``_index`` and ``_install``; docs/registry.md
walks through the commands.
"""

import lazy_loader as _lazy

# PEP 562 lazy exports: the names and their modules are listed once, in __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
