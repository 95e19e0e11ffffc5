"""Datasets in: reading every format, column mapping, ids and fingerprint, what the model sees.

``read`` (files, folders, demos → batches of rows → DataFrame), ``stream`` (the batch readers of
each format), ``cells`` (missing/blank/text of a cell, typed columns), ``columns`` (ColumnMap,
detection, ids, fingerprint, JSON-text columns), ``text`` (chats, plain text and previews as the
model sees them), ``dataset`` (Dataset, load_dataset).
"""
