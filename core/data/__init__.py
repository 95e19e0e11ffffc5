"""Datasets in: reading every format, column mapping, ids and fingerprint, what the model sees."""
