"""Per-sample gradient features: proxy models, tokenising, loss, scope, the sketch, extraction."""
