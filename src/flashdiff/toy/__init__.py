"""Tools for the bundled toy world: ``python -m flashdiff.toy.evaluate_world`` (measure the world and its LDM) and
``python -m flashdiff.toy.evaluate_severity`` (score a severity encoder on its val and test splits)."""
