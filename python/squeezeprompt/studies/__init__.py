"""Studies: fixed sets of pipeline runs that together answer one question, as a table.

Each study builds ordinary recipes, runs them with :func:`squeezeprompt.pipeline.run`
(resuming what already finished) and writes its results under ``docs/results/``.
"""
