{
  "format": "promptline-signature/v1",
  "key": "ed25519:JHMfjJUYfsCKX6RW/mTRuEmCX175fuqmv7NPYwjA21o=",
  "key_id": "a4ccf9baf2147837",
  "digest": "sha256:03e15e21f4c513df754a9268ecba8f33708c720e42d290ff07aa61e558151309",
  "files": {
    "README.md": "55591101dc956041740c6ab4c03a5dfb4bb5468355a9140621cda7f907f64100",
    "plugin.yaml": "836a915c296460d37e86565ef507d9170b1ef915f6b2b693fa31c5e3d766cf63",
    "project_search_plugin.py": "a51a6cb3a0278117cb172f55b1017e378b31667652cd3afff4f1766da504f6f2",
    "test_project_search.py": "9ba72e68b05f47764030bb2df667fa6de0bdb58ddea9c3885b06a9241b0ffa36"
  },
  "signature": "EynIXJGOur0XHNS3XBCg8F/IeB7GzC6KLbARdroFsnJuVRWC9Zz38QYfKSwe3H2vb5XPFOSswfqTHr2vBgheDg=="
}
