"""One module per CLI command (see ctranscnn.cli)."""
