{
  "format": "promptline-signature/v1",
  "key": "ed25519:V85pCZFKQMKGGWXoa11gYhubOx5PPa9+KuX8EfD+ZCw=",
  "key_id": "84b28f4a50f3e78f",
  "digest": "sha256:0d78e956bc701cf1493bd715fc7f263d71ca8636b1542df9261dce1c5ac6d1af",
  "files": {
    "README.md": "55591101dc956041740c6ab4c03a5dfb4bb5468355a9140621cda7f907f64100",
    "plugin.yaml": "836a915c296460d37e86565ef507d9170b1ef915f6b2b693fa31c5e3d766cf63",
    "project_search_plugin.py": "8a92d3875d6d2f34800619666d393184c848957b3b2612428d83acbbf75d644b",
    "test_project_search.py": "9367c9751053ee3620f3b99627fcd2c7ef22c20a1d822615ce0674115e5e2ea3"
  },
  "signature": "9iAYq1VrU4JHZ4oyI2oM4GaGeyVLcqj+5+Fer80iI7RJf5rbQhVNwBY/7QsIPFZGB3mXAbM++nfsZ5wRCQB1DQ=="
}
