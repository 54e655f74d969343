{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:eca0c74cab961d43021a4ea0ac0dcbdeb61a055e40c3a1b50df6a689faaa0a3b",
  "files": {
    "README.md": "d4a26e4852ed97bb6e140675472da5ee070c812fa8bfa94c6fdf79e6d1bd26ea",
    "build.sh": "6a0e8ff365f8e4f420d9a6c53613e927285e66ca0002734948cf1f95ff783830",
    "libnative_tools.so": "0755f45aaaf00a1370929979d663e89afcbc3fe5747c6d12e00ad54939d24400",
    "native_tools.c": "01f8f1287e5d3b07eca18804f08e1f5ecbd06d9a7b1a7d45f7419dd3d03469d3",
    "pl_json.h": "41043385945d4227c4b8b2b0615a96180760276075671720a4a9972d80705b26",
    "plugin.yaml": "c2be871acc880ce1879045788ce6804d1d87970afc15ac70b64ac8c1328d642e",
    "promptline_plugin.h": "9ea553100225790fa9544e29ae7318c165911c59721239f37fabb40b0c0c930c"
  },
  "signature": "dTgjHlExB15y1wpWldXeN9PUcs+a99baE/W2fV7xdK89zir594Lw4elNyDF0ZNzynMNqjwQXagtid7wL9B77AA=="
}
