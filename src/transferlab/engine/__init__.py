"""The ground every study stands on: jobs and their kinds, executors, claims, the store,
plan-time estimates, the task audit, spec-parsing helpers and the study registry.

May import the shared modules (`models`, `adapters`, `tasks`, `evaluate`, `stats`, ...) and
`learn`; never a study package (`engine.studies` names the study runners as strings).
"""
