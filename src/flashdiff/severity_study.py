"""``python -m flashdiff.severity_study [+experiment=toy_study_ordering] [key=value ...]``: σ̂² of the severity encoder
at a grid of severities, test noise levels and noise seeds, written to ``severity_study.csv`` in the run folder
(``flashdiff.metrics.severity_study``); ``python -m flashdiff.report`` draws ordering accuracy vs noise from it."""

from flashdiff.cli import severity_study

if __name__ == "__main__":
    severity_study()
