"""Datasets (real loaders, checksums, offline sources) and batched transforms."""
