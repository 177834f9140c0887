"""Truth probes and how well they generalise (seed 003), and across models (seed 001).

Modules, one concept each:
- `datasets`: contrastive rows (statement, label, group, answer type) with hash splits;
- `activations`: one batched forward pass per (model, dataset) keeping every layer's residual stream;
- `algorithms`: the probe estimators (DIM, LDA, LR, LR-G, CCS, PCA, PCA-G, LAT, random);
- `protocol`: train on A at layer L, score on every B, recovered accuracy, AUROC, bootstrap CIs;
- `results`: the tidy probes table in the run's SQLite;
- `report`: figures and Markdown from that table alone;
- `cross_model`: probes carried from one model to another through a linear map;
- `study` / `cli`: the whole study from flags or a spec, resumable.
"""
