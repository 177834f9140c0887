"""Cross-model adapter translation: predict model Y's LoRA adapter for a task from model X's.

`features` turns adapters into symmetry-respecting features, `translators` holds the
methods, `anchors` trains the anchor adapters on both models, `protocol` runs
leave-one-task-out, `gaps` decides when gap_recovered is NA or unstable (from any tidy
table), `imported` reads tables made elsewhere (seed 000's main table) for it, `cli` is
`transferlab translation flag|report`, `experiments` the three experiments and the
cross-model matrix, `plan` keys every anchor, translation and evaluation as engine jobs, `jobs` holds the
`translate` job kind, `summarise` turns the artifacts into tables, `report` writes the
Markdown, `figures` its PNGs, `points` the rows experiment 2's and 3's tables and figures
share, and `study` is `transferlab run` for `study: translation` specs.
"""
