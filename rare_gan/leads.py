"""The 12-lead layout of PTB-XL and the linear laws that tie the limb leads together.

PTB-XL stores leads in the order I, II, III, aVR, aVL, aVF, V1–V6 (header names ``AVR`` etc.).
Only 8 leads are independent: III, aVR, aVL and aVF follow from I and II by Einthoven's and
Goldberger's laws. :data:`INDEPENDENT_TO_12` is that linear map, the single source of truth used by
the lead-consistent generator (in-graph), the demo dataset and the physiology checks.
"""

from __future__ import annotations

import numpy as np

LEAD_NAMES: tuple[str, ...] = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""Lead names exactly as written in PTB-XL's WFDB headers, in storage order."""

DISPLAY_NAMES: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""Lead names as clinicians write them (for plots)."""

INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
INDEPENDENT_INDEX: tuple[int, ...] = tuple(LEAD_NAMES.index(name) for name in INDEPENDENT_LEADS)

SAMPLING_RATE_HZ = 100
"""Sampling rate of PTB-XL's ``records100`` files (Hz)."""
N_SAMPLES = 1000
"""Samples per record at 100 Hz (10 s)."""
N_LEADS = len(LEAD_NAMES)


def _independent_to_12() -> np.ndarray:
    m = np.zeros((len(INDEPENDENT_LEADS), N_LEADS), dtype=np.float32)
    for row, name in enumerate(INDEPENDENT_LEADS):
        m[row, LEAD_NAMES.index(name)] = 1.0
    i, ii = 0, 1  # rows of leads I and II
    m[[i, ii], LEAD_NAMES.index("III")] = (-1.0, 1.0)  # III = II - I
    m[[i, ii], LEAD_NAMES.index("AVR")] = (-0.5, -0.5)  # aVR = -(I + II) / 2
    m[[i, ii], LEAD_NAMES.index("AVL")] = (1.0, -0.5)  # aVL = I - II / 2
    m[[i, ii], LEAD_NAMES.index("AVF")] = (-0.5, 1.0)  # aVF = II - I / 2
    return m


INDEPENDENT_TO_12: np.ndarray = _independent_to_12()
"""(8, 12) matrix: ``ecg_12 = ecg_8 @ INDEPENDENT_TO_12`` for leads ordered as :data:`INDEPENDENT_LEADS`."""


def assemble_12_leads(independent: np.ndarray) -> np.ndarray:
    """Build all 12 leads (PTB-XL order) from the 8 independent ones (…, 8) -> (…, 12), same units."""
    independent = np.asarray(independent)
    if independent.shape[-1] != len(INDEPENDENT_LEADS):
        raise ValueError(f"expected 8 independent leads on the last axis, got shape {independent.shape}")
    return independent @ INDEPENDENT_TO_12.astype(independent.dtype, copy=False)


def limb_lead_residuals(ecg: np.ndarray) -> np.ndarray:
    """Deviation of III, aVR, aVL, aVF from Einthoven/Goldberger, (…, T, 12) -> (…, T, 4), input units.

    Zero for an ECG whose limb leads obey the laws exactly; real PTB-XL records show only the
    1 µV quantisation of the stored 16-bit samples.
    """
    ecg = np.asarray(ecg)
    derived = assemble_12_leads(ecg[..., list(INDEPENDENT_INDEX)])
    limb = [LEAD_NAMES.index(n) for n in ("III", "AVR", "AVL", "AVF")]
    return ecg[..., limb] - derived[..., limb]
