{
  "format": "promptline-signature/v1",
  "key": "ed25519:dXb+kXXDeo03oXpk9fitJN02X3KhPjZmDsys+jD4LBo=",
  "key_id": "90c119f4a74e48ad",
  "digest": "sha256:33a51159948dba0d130674c223bd12e177c826efaf17e5c04c0db258d5dd8c15",
  "files": {
    "README.md": "be2aea909902decf227ab0beb712d8f89e0208c948c94c0171883e9cd426a84b",
    "echo_model_plugin.py": "1d7604d445bca6a0027e4bb690bf10daec37a14d917bd7ae4b34111e5bb55bf2",
    "plugin.yaml": "f7245221f83029369545fa5d98651f4f3129037f60967cc8127a1c3260b32a34",
    "test_echo_model.py": "6e79eacd6df15368fd3728e3db1ad50ddf87e33b612bbe1abfe3a842edf70c7d"
  },
  "signature": "R/Oierxjztt+W5b+iKmP175opbzqAb/EtxHRo9U6MdqsQcvNP51/pWfI2myuzhXosT38qxT3pBE4Vc1D4s25Cw=="
}
