"""Per-sample gradient features: proxy models, tokenising, loss, scope, the sketch, extraction.

``proxy`` (load a model), ``tokenize`` (chat template, Encoded, padded width), ``loss`` (response
loss, the head's fused loss and backward, exact per-sample gradients), ``scope`` (which Linear
weights), ``sketch`` (KroneckerSketch and the dense reference, DenseSketch), ``hooks`` (the hooks that
fold a batch's gradients into sketch blocks), ``kernels`` (fused GPU pieces), ``distributed``
(ranks), ``extract`` (FeatureConfig, FeatureExtractor).
"""
