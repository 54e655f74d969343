"""Constants shared by the corpus fixture and its tests."""

TOKEN = "corpus-token-1234"   # the value of CORPUS_TOKEN the env-token plugin is granted
