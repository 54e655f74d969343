{
  "format": "promptline-signature/v1",
  "key": "ed25519:JHMfjJUYfsCKX6RW/mTRuEmCX175fuqmv7NPYwjA21o=",
  "key_id": "a4ccf9baf2147837",
  "digest": "sha256:803d6f62896a8eb33abd60e4f35cffd5147af4034f7af795540c870ac8feb17e",
  "files": {
    "notes_plugin.py": "38b55f8c026a74f98467a9bf5a0be4f031ce75d7722932b4f1a96bf03f8ebe85",
    "plugin.yaml": "b62c85021fa53057e47e657e7b86c59c8505d9b4be088c46aa6399868180b65f"
  },
  "signature": "RGRQELiuxeWHUdhakqL8OwmT5D0uNalOi3B74JxJLZ4V8ybuE2AVjsUSCExUmvWUTX15ZOG6EnfmNjyKI/IbCQ=="
}
