{
  "format": "promptline-signature/v1",
  "key": "ed25519:dXb+kXXDeo03oXpk9fitJN02X3KhPjZmDsys+jD4LBo=",
  "key_id": "90c119f4a74e48ad",
  "digest": "sha256:15523e2e5279c75985b3e91e26ec7b09ff152a9a4970da46ac9d1e059227508c",
  "files": {
    "README.md": "36e92d829d3aab78d5646d7448a66480c49dea103a40e6db72896a0d4e766773",
    "code_review_plugin.py": "f092fe0877faaf08d564fcd97554a290b74c558828aa22825943491e2c41556d",
    "plugin.yaml": "b4cd03ce007ac9f71ecbe1e66a32328c5e3fd1c7cbf75c4eac8d4bd5010cba67",
    "templates/explain-diff.md": "328ba1410a36ff07145b2f4a980954dc571c0df4eea38844084eb6e37c9ec9e7",
    "templates/review.md": "d8b1b24860b592498e817cdb3defd5306fff56942243e3a5b5eb215331bd80a3",
    "test_code_review.py": "a0d3f8302a3d8addd270e8c2288985679bfd12d23660de266339489eda2f72a9"
  },
  "signature": "EZD4ro2BFWPNqKUx/F2spmk3vC4w2lPQQNeXuDyt8tHdOexUgqHesS6EX9B+JND63jAdCnreMvdxY33Vn849BA=="
}
