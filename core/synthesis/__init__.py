"""What to add: the Prismatic Synthesis loop's stages, on arrays and texts (no workspace here).

- ``targets``: which cluster each generation request aims at, and its few-shot examples.
- ``prompts``: the chats sent to a generator and how its replies become samples.
- ``generators``: the embedded model, any local Hugging Face causal LM, or an OpenAI-compatible
  endpoint (``endpoint``), behind one ``Generator`` interface; replies are capped.
- ``filter``: which candidates are kept (nearest centroid in a sparse cluster, not a duplicate, well
  formed) and why each other one is not.

The loop over a workspace (rounds, the candidate store, joining kept samples) is
``core.workspace.synthesis``.
"""
