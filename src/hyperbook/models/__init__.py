"""One module per document's model family."""
