{
  "format": "promptline-signature/v1",
  "key": "ed25519:1T3RmsvayuBJ2nxOXjCUvaNxlwftshuKsdVL7TLa3AE=",
  "key_id": "7bc6d78d13f35e56",
  "digest": "sha256:c4c1e9f81944bdd8a227f2930d2fac597791602a3c3e52150cee2517d059a05b",
  "files": {
    "README.md": "36ff5347975fcf411213b68124d2b2e785c53cce2e40872d5a98c6afdb57e6f9",
    "calculator_plugin.py": "244d85d22ea1f8a2d49309a9a73152b680e9098c4a8f5b2c55b3cba873ab9994",
    "plugin.yaml": "74e34004692dc2ebf906cc8454429a2c6a57ae2bff0ebe527c14d383fd3f8716",
    "test_calculator.py": "b625d58551dda468f620dd37fcce3b3032a649586ab2d6f33254c4a6bf427059"
  },
  "signature": "htT2k9oFJMlkXqrOn43ts6ZEYRo0VHgcv7NPogqfg3erdpn9xrfRyJsfgZ0bNO4SIgmEZFS5Z6z2RPAMuoOVBg=="
}
