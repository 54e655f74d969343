{
  "format": "promptline-signature/v1",
  "key": "ed25519:dXb+kXXDeo03oXpk9fitJN02X3KhPjZmDsys+jD4LBo=",
  "key_id": "90c119f4a74e48ad",
  "digest": "sha256:ab6841a79513f0b8776ba730ab56990303d873bbd79d2b1ec57610ad20c177e0",
  "files": {
    "README.md": "c9307080ea3fbe672ba2b9ede396f594912563b15a72baf0980e7b29f527e791",
    "plugin.yaml": "836a915c296460d37e86565ef507d9170b1ef915f6b2b693fa31c5e3d766cf63",
    "project_search_plugin.py": "8a92d3875d6d2f34800619666d393184c848957b3b2612428d83acbbf75d644b",
    "test_project_search.py": "9367c9751053ee3620f3b99627fcd2c7ef22c20a1d822615ce0674115e5e2ea3"
  },
  "signature": "DRttoE53rAeuxrKMZUWFt25Br8HdAH+exbhkYz+Qc+GTh5RmWdBPB2upzVEAg9QMjg8AD3alS74hrKNEi6hIBQ=="
}
