"""PromptLine plugin system: public API for the core and for plugin authors."""

__all__: list[str] = []
