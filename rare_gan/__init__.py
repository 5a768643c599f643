"""rare_gan: inception/residual GANs for synthetic 12-lead ECGs of rare PTB-XL conditions.

Modules mirror the pipeline: :mod:`rare_gan.data` (PTB-XL loading, splits, scaling; :mod:`~rare_gan.demo`
data and :mod:`~rare_gan.download`) → :mod:`rare_gan.models` → :mod:`rare_gan.train` →
:mod:`rare_gan.generate` → :mod:`rare_gan.candidates` (vetting) → :mod:`rare_gan.evaluate`,
:mod:`rare_gan.metrics`, :mod:`rare_gan.physiology` → :mod:`rare_gan.report` / :mod:`rare_gan.variants`
→ :mod:`rare_gan.plots` / :mod:`rare_gan.export`. :mod:`rare_gan.pipeline` runs the notebooks
(``run_all.sh``); :mod:`rare_gan.bench` measures throughput.
"""

__version__ = "0.1.0"
