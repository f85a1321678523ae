"""Layer 5, the studies of this reproduction: each module defines its cells and the summaries of
its results, and nothing else (the engine runs the cells, :mod:`hdrepro.report` writes the
prose). ``grids`` (α₀ × β grids), ``grid_verdicts``, ``second_order``, ``fig1``, ``stacks``,
``equivalence``, ``divergence``, ``threshold``, ``sensitivity``, ``rivals``, ``asgc``,
``epsilon``, ``convex``, ``contested``; ``stats`` holds the intervals and the tie rule every
verdict uses."""
