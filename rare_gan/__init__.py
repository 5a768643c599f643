"""rare_gan: GANs for synthetic 12-lead ECGs of rare PTB-XL conditions, evaluated on held-out real data.

Modules mirror the pipeline: :mod:`rare_gan.data` (PTB-XL loading, splits, scaling; :mod:`~rare_gan.demo`
data and :mod:`~rare_gan.download`) → networks (:mod:`rare_gan.models`: the research's inception/residual
blocks and GAN; :mod:`rare_gan.ecgnets`: the beat-and-rhythm generator and multi-scale discriminator) →
training (:mod:`rare_gan.recipes`: configurations and named recipes; :mod:`rare_gan.gan`: the
``keras.Model`` and its ``train_step``; :mod:`rare_gan.checkpoints`; :mod:`rare_gan.train`: the loop,
pretraining cache, run folders) → :mod:`rare_gan.generate` → :mod:`rare_gan.candidates` (vetting) →
evaluation (:mod:`rare_gan.features`, :mod:`rare_gan.realism`, :mod:`rare_gan.evaluate`,
:mod:`rare_gan.utility`, :mod:`rare_gan.lowdata`, :mod:`rare_gan.metrics`, :mod:`rare_gan.physiology`) →
:mod:`rare_gan.report`, :mod:`rare_gan.study` (``results.json``) → :mod:`rare_gan.plots` /
:mod:`rare_gan.export`. :mod:`rare_gan.pipeline` runs the notebooks (``run_all.sh``);
:mod:`rare_gan.bench` measures throughput.
"""

import os
import sys

__version__ = "0.2.0"


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow once with its start-up chatter silenced.

    Before its logging is set up TensorFlow writes straight to file descriptor 2: oneDNN notices,
    CUDA driver probes and, on a machine without a GPU, "failed call to cuInit: ... CUDA error",
    which reads to a new user as a failure. File descriptor 2 points at /dev/null during the
    import only; Python errors still surface. ``RARE_GAN_TF_LOGS=1`` keeps every line.
    """
    if "tensorflow" in sys.modules or os.environ.get("RARE_GAN_TF_LOGS") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                pass  # modules that need it will say so
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _run_eagerly_if_asked() -> None:
    """``RARE_GAN_EAGER=1``: every TensorFlow function (training steps, generation) runs eagerly, op by op.

    For debugging, and for runs of a few steps (the test suite's): tracing a GAN's training step takes
    longer than the steps themselves. Without R1 eager and traced runs agree to 1e-6 (relative); with
    R1 (the default recipe) to float rounding, as two traced R1 runs do (README *Reproducibility*).
    """
    if os.environ.get("RARE_GAN_EAGER") == "1":
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)


_import_tensorflow_quietly()
_run_eagerly_if_asked()
