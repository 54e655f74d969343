"""The plugins: API, discovery, signatures, loaders and the PluginManager."""
