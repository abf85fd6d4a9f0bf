"""Solvers, one file per algorithm: ``conf/solver/<name>.yaml`` targets ``flashdiff.solvers.<name>.<name>``.

A diffusion solver is a ``flashdiff.types.DiffusionSolver`` (a grid and a step rule; the engine runs the loop);
SwinIR is a ``flashdiff.types.Restorer``. Nothing is re-exported here: import from the defining module.
"""
