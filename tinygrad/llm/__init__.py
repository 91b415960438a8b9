"""Language-model support: the GGUF weight format (tinygrad.llm.gguf)."""
