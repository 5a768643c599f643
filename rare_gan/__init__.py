"""rare_gan: inception/residual GANs for synthetic 12-lead ECGs of rare PTB-XL conditions.

Modules mirror the pipeline: :mod:`rare_gan.data` (PTB-XL loading, splits, scaling, demo data and
download) → :mod:`rare_gan.models` → :mod:`rare_gan.train` → :mod:`rare_gan.generate` →
:mod:`rare_gan.evaluate` / :mod:`rare_gan.candidates` → :mod:`rare_gan.plots` / :mod:`rare_gan.export`.
"""

__version__ = "0.1.0"
