"""Truth probes and how well they generalise (seed 003), and across models (seed 001).

Modules, one concept each:
- `rows`: contrastive rows (statement, label, group, answer type), their hash splits, `ProbeDataset`;
- `datasets`: every built-in dataset by name, the offline families (truth sets, MMLU), `load_dataset`;
- `hub`: the hub-format families (DLK, RepE, TruthfulQA) through the Hugging Face loader;
- `activations`: one batched forward pass per (model, dataset) keeping every layer's residual stream;
- `algorithms`: the probe estimators (DIM, LDA, LR, LR-G, CCS, PCA, PCA-G, LAT, random);
- `protocol`: train on A at layer L, score on every B, recovered accuracy, AUROC, bootstrap CIs;
- `conventions`: the two protocols (held out, the default, and repeng's), their fit params and eval rules;
- `threads`: how many threads a sweep runs on, torch's and the BLAS pools' set together;
- `results`: the tidy probes table in the run's SQLite;
- `tables`: the report's numbers from that table alone (scores, best probes, matrices, headline);
- `figures`: the report's figures, one drawing function each;
- `truthfulqa`: figure r4 and its numbers (TruthfulQA against the other datasets);
- `report`: which figures a run gets, and summary.md;
- `cross_model`: probes carried from one model to another through a linear map (its parts);
- `spec`: the study's config, from a spec file or the CLI's flags;
- `plan`: the study as engine jobs (extract, fit, score, map, cross), each keyed by what determines it;
- `jobs`: the handlers of those job kinds;
- `summarise`: the finished artifacts into the tidy tables;
- `study` / `cli`: the whole study from flags or a spec, through the engine's executor, resumable.
"""
