"""Background work on a workspace: the one ``Job`` record and its start/read/cancel API
(``record``), feature extraction (``extraction``), the clusters-and-map job (``analysis``) and the
run-time estimate before a feature run (``estimate``)."""
