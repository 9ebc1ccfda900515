"""See what a network learned: the pictures of section 6 of Erhan et al. (2010), from run folders.

- :mod:`onlinedeep.show.filters` — first-layer weights and activation maximization (Figures 3-4);
- :mod:`onlinedeep.show.trajectories` — function-space maps by t-SNE and Isomap (Figures 5-6);
- :mod:`onlinedeep.show.landscape` — the training error along random gradient directions (Figure 7);
- :mod:`onlinedeep.show.sources` — runs and snapshots given on the command line, the examples the
  pictures are computed on, and the atomic writers of their data.

``onlinedeep show filters|trajectories|landscape RUN... --out DIR`` (cli/show.py) draws them.
"""
from onlinedeep.show.sources import ShowError

__all__ = ["ShowError"]
