{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:69549bf3f3de30e8d96a729814051cdcb1ad4da44883a3bc1f906b535d2b6d1e",
  "files": {
    "README.md": "201807857218e76dae363bf358616868b8ba0bfaace769dbb39441cd8acf3ebf",
    "echo_model_plugin.py": "1d7604d445bca6a0027e4bb690bf10daec37a14d917bd7ae4b34111e5bb55bf2",
    "plugin.yaml": "f7245221f83029369545fa5d98651f4f3129037f60967cc8127a1c3260b32a34",
    "test_echo_model.py": "7e51866b312d2fe1edfa368f3cacefac230efba39ffca0a62d2288597c7720db"
  },
  "signature": "QqeKrRwPxjlPlpJnDnuS+YGwNETqzjXGdl5WlxaTDCikA5UI+n3oXMLHXBYDepqhich+ybm36KUljkhuxOsCDA=="
}
