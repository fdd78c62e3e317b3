"""Training and evaluation of zoo models: losses, streaming metrics, the trainer (searchers reuse it)."""
