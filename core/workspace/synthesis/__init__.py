"""The Prismatic Synthesis loop on a workspace: the loop and its job (``loop``), one round
(``rounds``), the candidates kept with their provenance (``candidates``) and the rows they add
(``grow``). The stages it calls (targets, prompts, generators, filter) are ``core.synthesis``."""
