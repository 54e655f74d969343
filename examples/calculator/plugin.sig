{
  "format": "promptline-signature/v1",
  "key": "ed25519:V85pCZFKQMKGGWXoa11gYhubOx5PPa9+KuX8EfD+ZCw=",
  "key_id": "84b28f4a50f3e78f",
  "digest": "sha256:8e1681dd52ab4db96a9f85946f72d190fd0d879264820fabf0b671fae0110385",
  "files": {
    "README.md": "36ff5347975fcf411213b68124d2b2e785c53cce2e40872d5a98c6afdb57e6f9",
    "calculator_plugin.py": "244d85d22ea1f8a2d49309a9a73152b680e9098c4a8f5b2c55b3cba873ab9994",
    "plugin.yaml": "74e34004692dc2ebf906cc8454429a2c6a57ae2bff0ebe527c14d383fd3f8716",
    "test_calculator.py": "a0a5e6b554ca49c81d3cbbc014d5b7780b20bb8a685da1d2c2541f4706227272"
  },
  "signature": "R2aXjT/fvsLRivCs2ALhf+oCD/nSos4cE7iDHICFQxtr9AwuOOBhyXnxt7S7/V9FHwa7Fcne7t8CSBtqG+ZWCQ=="
}
