"""The policy language: manifests, policy files, CEL compilation and decisions."""
