{
  "format": "promptline-signature/v1",
  "key": "ed25519:dXb+kXXDeo03oXpk9fitJN02X3KhPjZmDsys+jD4LBo=",
  "key_id": "90c119f4a74e48ad",
  "digest": "sha256:39601db8a330331008a61b0f948aff4a4999d2331a5f830464c9971a1151ef7e",
  "files": {
    "README.md": "01f6ce41afcf33548113b2d5e4059fbc702654b66923f62a40b4aeabfdb832b4",
    "calculator_plugin.py": "244d85d22ea1f8a2d49309a9a73152b680e9098c4a8f5b2c55b3cba873ab9994",
    "plugin.yaml": "74e34004692dc2ebf906cc8454429a2c6a57ae2bff0ebe527c14d383fd3f8716",
    "test_calculator.py": "333a4473a3c536f72ac9b49bc0d24bfc2d3d789569e98ff2146c639a9eaddc0c"
  },
  "signature": "AMSER/iwk2hR8gAUKsq5dDxJiL9pgO/oRMXVBKYyNBXCvUHW+VFHD645R8hoFozTaTMw0qWbqN/rlLYScNSDDg=="
}
