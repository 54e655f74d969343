{
  "format": "promptline-signature/v1",
  "key": "ed25519:V85pCZFKQMKGGWXoa11gYhubOx5PPa9+KuX8EfD+ZCw=",
  "key_id": "84b28f4a50f3e78f",
  "digest": "sha256:d8c62586073845b31d6f6c8a8b1433437f7f7d7fb602ceea4e13680de158d601",
  "files": {
    "README.md": "201807857218e76dae363bf358616868b8ba0bfaace769dbb39441cd8acf3ebf",
    "echo_model_plugin.py": "1d7604d445bca6a0027e4bb690bf10daec37a14d917bd7ae4b34111e5bb55bf2",
    "plugin.yaml": "f7245221f83029369545fa5d98651f4f3129037f60967cc8127a1c3260b32a34",
    "test_echo_model.py": "6e79eacd6df15368fd3728e3db1ad50ddf87e33b612bbe1abfe3a842edf70c7d"
  },
  "signature": "MsIQ2bjaUoXt90eSWo/b/WrKe6R43kNCJShZnfENHsH2oN98g6g02rMubSGDJLp7tgoqqthd+IoiqmJwo9HGAw=="
}
