"""Self-contained HTML report pages: one `report.html` per run, and an index over many runs.

    transferlab report RUN          # RUN/report/report.html beside summary.md (probes, translation alike)
    transferlab report --index DIR  # DIR/index.html: one card per run found under DIR

A report layer beside the Markdown and PNGs, not instead of them: `page` (a page of blocks,
written atomically, inline CSS/JS and Plotly's bundled JavaScript), `charts` (Plotly figures as
plain dicts), `tables` (sortable, filterable tables), `markdown` (our Markdown as HTML),
`examples` (per-example records: what an adapter changed), `curves`, and one page per study
kind: `transfer`, `probes`, `translation`; `index` over many runs. A shared module: it imports
no study; each study's report passes in its own numbers (its matrices, its significance rule).
"""
