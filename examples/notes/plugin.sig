{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:803d6f62896a8eb33abd60e4f35cffd5147af4034f7af795540c870ac8feb17e",
  "files": {
    "notes_plugin.py": "38b55f8c026a74f98467a9bf5a0be4f031ce75d7722932b4f1a96bf03f8ebe85",
    "plugin.yaml": "b62c85021fa53057e47e657e7b86c59c8505d9b4be088c46aa6399868180b65f"
  },
  "signature": "TWVfBbuxti9xNjBNd2XmG5f6iX8VDDW+lFzC5w/rDlZeFugHTJ8w7Ui/3mTknnKclYnMf7ZlGxLufSvbUG2XDw=="
}
