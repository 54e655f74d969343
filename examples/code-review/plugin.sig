{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:a147f7fa2f405e74b3132f17852486f96841db55a55fadd6b7c1085cded4118a",
  "files": {
    "README.md": "e54c7b5f04b35bbe7c12620c21a9e0b6d799b8fc4fda44e513386c73af4c90d7",
    "code_review_plugin.py": "f092fe0877faaf08d564fcd97554a290b74c558828aa22825943491e2c41556d",
    "plugin.yaml": "b4cd03ce007ac9f71ecbe1e66a32328c5e3fd1c7cbf75c4eac8d4bd5010cba67",
    "templates/explain-diff.md": "328ba1410a36ff07145b2f4a980954dc571c0df4eea38844084eb6e37c9ec9e7",
    "templates/review.md": "d8b1b24860b592498e817cdb3defd5306fff56942243e3a5b5eb215331bd80a3",
    "test_code_review.py": "a0d3f8302a3d8addd270e8c2288985679bfd12d23660de266339489eda2f72a9"
  },
  "signature": "Z3jcSw53R9SyLXqgjcFJtGV+yBAHRBD3fugiF4n/Tz+UO+BTmUJTqPAXyaihztDkOpaIOee57aFMElw9wJirAA=="
}
