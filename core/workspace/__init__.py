"""The workspace on disk and everything that reads or writes it: store, analyses, subsets,
comparison, export; background jobs in ``jobs/``, the synthesis loop in ``synthesis/``."""
