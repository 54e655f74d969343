{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:05bd43b667758455513777bd85a956420fa5bd2b136a4d6a37ba1d02d93df688",
  "files": {
    "README.md": "ba374ea88fe6b4ee3b0632059ee6926f280edc05f7bb4ad59f8ad888c424827f",
    "build.sh": "6a356188e736ac207d20b2bdb77d6c2164e3a051c4fdecbf3c833eee6300992c",
    "pl_json.h": "41043385945d4227c4b8b2b0615a96180760276075671720a4a9972d80705b26",
    "plugin.yaml": "160c919ae760a07deaff84e46b0abd102a5d8e8e51cddde2631d03d1aba2138c",
    "wordcount.c": "27206ce7e86382f9ab174ea6e90fef91808cb68af3267f78ac53f07025252054",
    "wordcount.wasm": "7ae1b615a462d3db1a63eac7521e9674c884f67189d4247bccee7a3845918686"
  },
  "signature": "UlU/46gY9EknCoeoAQbg8Hp2EgyfW0Vu025rGF/pG4f2pVx7/GJtFnrgoqFvGO/BFUM5HfxQJdFOYEwBZSuRAQ=="
}
