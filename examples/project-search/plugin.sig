{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:03e15e21f4c513df754a9268ecba8f33708c720e42d290ff07aa61e558151309",
  "files": {
    "README.md": "55591101dc956041740c6ab4c03a5dfb4bb5468355a9140621cda7f907f64100",
    "plugin.yaml": "836a915c296460d37e86565ef507d9170b1ef915f6b2b693fa31c5e3d766cf63",
    "project_search_plugin.py": "a51a6cb3a0278117cb172f55b1017e378b31667652cd3afff4f1766da504f6f2",
    "test_project_search.py": "9ba72e68b05f47764030bb2df667fa6de0bdb58ddea9c3885b06a9241b0ffa36"
  },
  "signature": "tO4MvbuAaM8SoFuu3yxfI8JgnWl7pyRDt2+czlJJzZ6o1DSTMwlrhKuWuuYUmsEsP6BDn1IRVd26GF9Zl9+hCg=="
}
