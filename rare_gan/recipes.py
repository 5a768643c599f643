"""Training configurations and the named recipes that fill them.

A :class:`TrainConfig` is everything that defines one GAN training run (it is saved as the run's
``config.json``). A :class:`Recipe` is a documented bundle of architecture and training settings;
choose one by name (``recipe="beat"`` in the notebooks, ``--recipe`` in ``run_all.sh`` and the CLI):

``research``
    The research's model and training, exactly: inception/residual generator (Dense → BN →
    LeakyReLU → Reshape → Conv1DTranspose 128 → 64 → 12, kernel 5, ``tanh``, 12 free output
    channels) and discriminator,
    NS-GAN loss, Adam β₁ 0.5, no augmentation, no penalty, one GAN per code trained from scratch
    on that code's training-fold records. *Initial* / *Modified* learning rates apply to it.
``beat`` (the default)
    Learns what an ECG is from every training-fold record, then specialises. A beat-and-rhythm
    generator (:mod:`rare_gan.ecgnets`) and a multi-scale discriminator (full rate and ×4
    pooled), both conditioned on each record's SCP codes (multi-hot), DiffAugment (gain, circular
    shift) on real and fake, lazy R1 (γ 0.1 every 4th step). Pretrained once per data set and seed
    on all training-fold records (cached, reused by every code and both learning-rate
    configurations, at fixed learning rates 2e-4 / 2e-4); then fine-tuned on the code's records
    with the two lowest discriminator stages frozen (FreezeD). *Initial* / *Modified* learning
    rates apply to the fine-tuning only.
``beat_ectopic`` (a candidate, not the default)
    ``beat`` with the rhythm head of :class:`rare_gan.ecgnets.EctopicTiming`: each beat template
    carries a learnt prematurity and compensatory pause, and RR intervals get independent
    per-beat jitter. Aimed at the feature that gives ``beat``'s PAC, PVC and AFIB ECGs away most
    (the lag-1 autocorrelation of RR intervals: negative in real records, ≥ 0 in synthetic ones).
    Measured: adversarial training leaves its new parameters at their starting values (README
    *Limitations*), so it is no better than ``beat`` yet.
``beat_matched`` (a candidate)
    ``beat`` with *visible beats* (:class:`rare_gan.ecgnets.TemplateScale`: every template drawn
    at a learnt per-ECG sharpness, templates within 2× of each other) and *summary-statistic
    matching* in pretraining and fine-tuning (:mod:`rare_gan.matching`, weight 1: RR statistics of
    the generator's R times and per-lead band-power shares against the real batch's). Aimed at two
    measured faults of ``beat``: its generator places about twice the beats a detector finds, every
    other one drawn from a near-silent template, so its rhythm head's RR intervals are not the ECG's
    and no loss on them can reach the visible rhythm; and the rhythm and high-frequency features that
    give its ECGs away get almost no gradient through the discriminator. Measured (README realism
    table, 3 GAN seeds): closer to real than ``beat`` for CLBBB, not for PAC, PVC or AFIB — the
    detector still counts other beats than were placed in most ECGs (README *Limitations*).

``beat_visible_ectopic`` (a candidate)
    ``beat`` with visible beats (as ``beat_matched``), the ectopic rhythm head (as ``beat_ectopic``)
    and band-power matching only (as ``beat_band``, but in both stages; no RR statistics, so nothing
    depends on a detector agreeing with the placed beats). Asks whether the ectopic head learns its
    prematurity and pause once every placed beat is one the detector sees.
``beat_visible_ectopic_init`` (a candidate)
    ``beat_visible_ectopic`` with the ectopic head's prematurity and pause started at a plausible
    value (0.3 RR-deviation units instead of 0.018, where softplus is flat) and given their own
    learning-rate factor (10), so Adam's steps can move them (its own pretraining). Measured (one
    GAN seed): they move but stay within 0.03 of 0.3, and no code's strong C2ST improves.
``beat_lead_field`` (a candidate)
    ``beat_visible_ectopic_init`` with beat templates and residual drawn as 4 cardiac source signals
    and projected onto the 8 independent leads by a per-ECG lead-field matrix
    (:class:`rare_gan.ecgnets.LeadField`), as real leads are projections of the heart's dipole.
    Aimed at the inter-lead correlations that give the other candidates away (V5–V6, V1–V6; its
    own pretraining). Measured (3 GAN seeds on one pretraining): lead coherence as real, CLBBB's
    strong C2ST 0.836–0.898 (0.927 without the lead field, one seed); PAC, PVC and AFIB are still
    given away by their rhythm.
``beat_matched_lead_field`` (a candidate)
    ``beat_matched`` (visible beats, the free rhythm head that starts regular, RR and band-power
    matching) with the lead field of ``beat_lead_field``: asks whether the lead field's gain on
    CLBBB holds without the ectopic head, whose irregular rhythm is what still gives
    ``beat_lead_field``'s CLBBB ECGs away (its own pretraining). Measured (one pretraining): CLBBB's
    strong C2ST 0.758–0.794 over 3 GAN seeds, the first under 0.80, with near-copies at the rule's
    false-flag rate on unseen real ECGs (README *Limitations*); PAC 0.893–0.898, PVC 0.945–0.953 and AFIB
    0.951–0.963 over 3 GAN seeds.
``beat_matched_lead_field_detail`` (a candidate)
    ``beat_matched_lead_field``'s pretraining (shared), fine-tuned with two more matched statistics
    (:mod:`rare_gan.matching`): RR jumps (pNN50 and the largest successive RR change) and per-lead
    roughness (SD of the second difference). Aimed at what still gives that recipe's ECGs away
    (``c2st_top_features``): pNN50 too high for PAC and PVC (even jitter where real records are
    regular with rare premature beats), RR jumps too large for AFIB, limb leads too rough for CLBBB.
    Measured (3 GAN seeds on one pretraining): PAC 0.843–0.860 (from 0.893–0.898), PVC 0.927–0.951; CLBBB
    0.760–0.832 and AFIB 0.946–0.960 no better (README *Limitations*).
``beat_matched_lead_field_agree`` (a candidate)
    ``beat_matched_lead_field_detail`` with *beat agreement* in fine-tuning
    (:func:`rare_gan.matching.beat_agreement`): every placed beat a steep QRS in lead II, nothing
    else nearly as steep. Its placed R times already had the real lag-1 RR autocorrelation, but the
    detector found the placed beat count in a quarter of the ECGs only, so the measured one was ≈ 0
    (the most separating feature for PAC and PVC). Measured (3 GAN seeds on one pretraining): CLBBB
    0.594–0.824, PAC 0.790–0.890, PVC 0.913–0.940, AFIB 0.915–0.946, every 3-seed mean below
    ``_detail``'s and W1 RR-SD 10–44 ms, but the ranges overlap ``_detail``'s, and on a second
    pretraining every code is worse than ``beat``'s (0.959–0.985, one GAN seed): its penalty has no
    bound (``beat_matched_lead_field_agree_bounded``; README *Limitations*).
``beat_matched_lead_field_agree_bounded`` (a candidate)
    ``beat_matched_lead_field_agree`` with the beat-agreement penalty bounded (``agreement_floor``
    0.5: the reference slope is at least half the ECG's steepest lead-II slope). On the second
    pretraining the unbounded penalty was 51,000 in the first fine-tuning batch (4 on the first
    pretraining), from ECGs whose placed beats were near-flat; fine-tuning then broke what the
    pretraining had right (PAC: V2–V3 correlation 0.75 → 0.08; real 0.87). Bounded: 28. On 400 real
    records the penalty at the detected peaks is unchanged up to its 99th percentile. Measured (3 GAN
    seeds per pretraining, mean, PAC / CLBBB / PVC / AFIB): pretraining 0 0.849 / 0.776 / 0.906 / 0.947,
    pretraining 1 0.950 / 0.943 / 0.943 / 0.944 (``beat`` on its pretraining 1, one GAN seed: 0.951 / 0.947 /
    0.959 / 0.931); for PAC, CLBBB and PVC the pretrainings' ranges do not overlap.
``beat_matched_lead_field_morph`` (a candidate)
    ``beat_matched_lead_field_agree_bounded`` also matching the mean beat's shape
    (:func:`rare_gan.matching.beat_morphology`: every 50 ms from −250 to +450 ms, per lead, at the
    placed R times; the real records' at their detected R peaks, as population moments). What gave
    the bounded candidate's ECGs away was the median beat: QRS amplitudes a third of real (CLBBB on
    the second pretraining), P wave and ST level (PAC on the first). Measured (GAN seed 0, pretraining 0):
    worse, PAC 0.971 and CLBBB 0.961 (bounded: 0.844, 0.741); the matched gap rose during fine-tuning
    (PAC 1.8 → 3.6) and the detected rhythm broke (CLBBB RR-SD 290 vs real 22 ms). Not taken further.
``beat_matched_lead_field_agree_welch`` (a candidate)
    ``beat_matched_lead_field_agree`` with the band-power shares matched from Welch's estimate, as
    the realism features compute them (:func:`rare_gan.matching.welch_band_statistics`) instead of
    the whole record's periodogram: with beat agreement the rhythm stopped giving PVC away and the
    0–0.5 Hz share of the limb leads (3× real's in Welch's estimate, matched in the periodogram's)
    became the most separating feature. Measured (GAN seed 0): that feature leaves the top list, the
    strong C2ST does not fall (PVC 0.910, PAC 0.876).
``beat_visible_ectopic_rr`` (a candidate)
    ``beat_visible_ectopic``'s pretraining (shared), fine-tuned with RR-statistic matching added to
    the band-power matching: a direct gradient on the ectopic head's prematurity and pause, which
    adversarial training leaves at their starting values (README *Limitations*).

The number of steps of each stage depends on the profile (``test``, ``quick``, ``full``):
:meth:`Recipe.config` builds the config of one stage of one run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rare_gan.leads import INDEPENDENT_LEADS

INITIAL = {"lr_generator": 2e-4, "lr_discriminator": 2e-4}
"""The research's *Initial* configuration (reported as more realistic)."""
MODIFIED = {"lr_generator": 4e-4, "lr_discriminator": 1e-4}
"""The research's *Modified* configuration (reported as overly smooth)."""

LOSSES = ("nonsaturating", "wgan-gp")
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
ARCHITECTURES = ("research", "beat")
RHYTHMS = ("free", "ectopic")
"""How the beat generator's rhythm head draws RR intervals (see :func:`rare_gan.ecgnets.build_beat_generator`)."""
MATCHED_STATISTICS = ("rr", "band", "band_welch", "rr_jumps", "roughness", "beats", "morphology")
"""What summary-statistic matching can match (:attr:`TrainConfig.matched_statistics`, :mod:`rare_gan.matching`)."""
ALL_RECORDS = "ALL"
"""``target`` value meaning every training-fold record (for pretraining before fine-tuning)."""


class TrainingDivergedError(RuntimeError):
    """A loss became NaN/inf or exploded; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    One ``seed`` fixes the data order, the noise and the initial weights. An *epoch* is
    ``steps_per_epoch`` batches drawn without replacement from reshuffled passes over the target's
    training records (default: one pass, at least one batch), so tiny rare classes still get
    meaningful epochs.

    The field defaults are the research's model and training exactly (inception/residual
    transposed-conv generator with kernel 5, single-scale discriminator, NS-GAN loss, no
    augmentation, no penalty); a *recipe* (:data:`RECIPES`) is a named bundle of overrides, and
    :func:`make_config` builds the config of one run of a recipe.
    """

    target: list[str]
    recipe: str = "custom"
    """Name of the recipe the settings came from (provenance only; "custom" when set by hand)."""
    architecture: str = "research"
    """'research': the research's generator and discriminator (:mod:`rare_gan.models`); 'beat': the
    beat-and-rhythm generator and multi-scale discriminator (:mod:`rare_gan.ecgnets`)."""
    lr_generator: float = INITIAL["lr_generator"]
    lr_discriminator: float = INITIAL["lr_discriminator"]
    beta_1: float = 0.5
    epochs: int = 100
    batch_size: int = 64
    steps_per_epoch: int | None = None
    latent_dim: int = 100
    loss: str = "nonsaturating"
    gp_weight: float = 10.0
    critic_steps: int = 1
    lead_consistent: bool = True
    generator_kernel_size: int = 5
    """Research architecture: kernel of the generator's stride-2 transposed convs (4, a multiple of
    the stride, avoids the checkerboard ripple that the research's 5 gives)."""
    generator_upsample: str = "transpose"
    """'transpose' (Conv1DTranspose stages, the research's design) or 'nearest' (UpSampling1D + Conv1D)."""
    beta_2: float = 0.999
    """Adam β2 for both optimisers (WGAN-GP is usually run with 0.9)."""
    discriminator_dropout: float = 0.0
    """Dropout after each discriminator inception block (0 = none, the research's D)."""
    discriminator_pooling: str = "average"
    """How D pools its last feature map: 'average' (global, position-free) or 'flatten' (sees where
    beats fall over the 10 s, so it can judge the rhythm)."""
    discriminator_scales: tuple[int, ...] = (1, 4)
    """Beat architecture: average-pooling factors of the multi-scale discriminator's inputs."""
    beat_rhythm: str = "free"
    """Beat architecture: how the rhythm head draws RR intervals, 'free' or 'ectopic' (template-driven
    prematurity and compensatory pause plus independent per-beat jitter; :class:`rare_gan.ecgnets.EctopicTiming`)."""
    ectopic_start: float = math.log1p(math.exp(-4.0))
    """Ectopic rhythm: starting prematurity and pause of every template in RR-deviation units (≈ 0.018
    by default, where softplus is flat; :class:`rare_gan.ecgnets.EctopicTiming`)."""
    ectopic_rate: float = 1.0
    """Ectopic rhythm: learning-rate factor of the prematurity and pause parameters."""
    lead_rank: int = 0
    """Beat architecture: draw beats and residual as this many cardiac source signals projected onto the 8
    leads by a per-ECG lead field (:class:`rare_gan.ecgnets.LeadField`); 0 = every lead drawn freely."""
    beat_visible: bool = False
    """Beat architecture: every beat template at a learnt per-ECG sharpness, templates within 2× of
    each other (:class:`rare_gan.ecgnets.TemplateScale`), so no placed beat is invisible."""
    stats_weight: float = 0.0
    """Beat architecture: weight of the summary-statistic matching term in the generator's loss (RR
    statistics of its R times and per-lead band-power shares against the real batch's;
    :mod:`rare_gan.matching`). 0 = off."""
    matched_statistics: tuple[str, ...] = ("rr", "band")
    """Beat architecture: which statistics ``stats_weight`` matches, any of 'rr' (RR statistics of the
    generator's R times), 'band' (per-lead band-power shares, periodogram), 'band_welch' (the same from
    Welch's estimate, as the realism features), 'rr_jumps' (pNN50 and the largest
    successive RR change), 'roughness' (per-lead SD of the second difference), 'beats' (a penalty
    that the placed beats are the ECG's beats in lead II, :func:`rare_gan.matching.beat_agreement`) and
    'morphology' (the mean beat every 50 ms per lead against the real records' at their detected R peaks,
    :func:`rare_gan.matching.beat_morphology`)."""
    agreement_floor: float = 0.0
    """With 'beats' matched: the beat-agreement penalty's reference slope is at least this fraction of
    the ECG's steepest lead-II slope, which bounds the penalty where placed beats are near-flat
    (``ref_floor`` of :func:`rare_gan.matching.beat_agreement`; 0 = unbounded, as first built)."""
    r1_weight: float = 0.0
    """γ of the R1 penalty γ/2·E‖∇ₓD(x_real)‖² added to the NS-GAN discriminator loss (0 = off;
    ignored by WGAN-GP, which has its own penalty)."""
    r1_every: int = 1
    """Lazy R1 (StyleGAN2): apply the penalty, scaled by this factor, on every n-th step only."""
    diff_augment: bool = False
    """Differentiable augmentation of real *and* fake ECGs before every discriminator call, G's
    step included (:func:`rare_gan.gan.diff_augment`), so D cannot memorise a tiny rare-class set."""
    augment_gain: float = 0.2
    """DiffAugment: one amplitude factor per ECG, uniform in [1 − gain, 1 + gain], same for all leads."""
    augment_shift_s: float = 0.3
    """DiffAugment: circular time shift per ECG, uniform in ±shift seconds (100 Hz)."""
    augment_noise: float = 0.0
    """DiffAugment: std of white noise in scaled units, drawn on the 8 independent leads and mapped
    to 12 so the limb-lead relations stay exact. Off by default: with a ~5 mV scale, 0.01 is
    0.05 mV, enough to hide G's own high-frequency noise (and P waves) from D."""
    augment_wander: float = 0.0
    """DiffAugment: maximum amplitude (scaled units) of a 0.05–0.5 Hz baseline wander on the 8
    independent leads, mapped to 12. Off by default (the reference runs were made without it)."""
    precision: str = "float32"
    strategy: str = "default"
    seed: int = 0
    checkpoint_every: int = 5
    sample_every: int = 5
    keep_checkpoints: int = 2
    max_abs_loss: float = 1e6
    min_likelihood: float = 0.0
    conditional: bool = False
    """Condition G and D on each record's SCP codes as a multi-hot vector over ``label_codes``
    (label embedding in G, projection head in D), so one model learns from every record."""
    label_codes: list[str] | None = None
    """Conditional: the codes of the multi-hot vector; None = every code carried by at least
    ``min_label_records`` training-fold records (fixed when the run starts, kept by fine-tuning)."""
    min_label_records: int = 3
    init_from: str | None = None
    """Fine-tuning: a finished run folder whose generator/discriminator weights (and scaler and
    label codes) start this run, e.g. one pretrained with ``target="ALL"`` on every training record."""
    freeze_discriminator: int = 0
    """Fine-tuning (FreezeD): keep this many of the discriminator's lowest stages (per scale) fixed."""
    records: list[int] | None = None
    """Train on these training-fold records (ecg_id) of the target only, e.g. k drawn positives of
    the low-data study; None = all of them."""
    exclude_codes: list[str] | None = None
    """Leave out every record carrying one of these codes (a pretraining that must not see a code
    whose low-data behaviour is studied)."""
    data_dir: str | None = None
    name: str = "run"

    def __post_init__(self) -> None:
        if isinstance(self.target, str):
            self.target = [c.strip() for c in self.target.replace(";", ",").split(",") if c.strip()]
        self.target = [c.upper() for c in self.target]
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = int(self.steps_per_epoch)  # the CLI hands it over as a string
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("epochs", "batch_size", "latent_dim", "checkpoint_every", "sample_every", "critic_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.lr_generator > 0 and self.lr_discriminator > 0):
            raise ValueError("learning rates must be > 0")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.beat_rhythm not in RHYTHMS:
            raise ValueError(f"beat_rhythm must be one of {RHYTHMS}, got {self.beat_rhythm!r}")
        if not (self.ectopic_start > 0 and self.ectopic_rate > 0):
            raise ValueError(f"ectopic_start and ectopic_rate must be > 0, got {self.ectopic_start!r}, "
                             f"{self.ectopic_rate!r}")
        n_leads = len(INDEPENDENT_LEADS)
        if not 0 <= int(self.lead_rank) <= n_leads or (self.lead_rank and self.architecture != "beat"):
            raise ValueError(f"lead_rank must be 0 (free leads) to {n_leads}, with architecture='beat'; "
                             f"got {self.lead_rank!r}")
        if self.stats_weight < 0:
            raise ValueError(f"stats_weight must be >= 0, got {self.stats_weight!r}")
        if self.stats_weight and self.architecture != "beat":
            raise ValueError("stats_weight needs architecture='beat' (it matches the R times of the beat generator)")
        if not 0.0 <= self.agreement_floor < 1.0:
            raise ValueError(f"agreement_floor must be in [0, 1), got {self.agreement_floor!r}")
        self.matched_statistics = tuple(self.matched_statistics)
        if not self.matched_statistics or set(self.matched_statistics) - set(MATCHED_STATISTICS):
            raise ValueError(f"matched_statistics must be a non-empty subset of {MATCHED_STATISTICS}, "
                             f"got {self.matched_statistics!r}")
        if self.generator_upsample not in ("transpose", "nearest"):
            raise ValueError(f"generator_upsample must be 'transpose' or 'nearest', got {self.generator_upsample!r}")
        for name in ("generator_kernel_size", "r1_every", "min_label_records"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.discriminator_dropout < 1.0:
            raise ValueError(f"discriminator_dropout must be in [0, 1), got {self.discriminator_dropout!r}")
        if self.r1_weight < 0 or self.augment_gain < 0 or self.augment_shift_s < 0 or self.augment_noise < 0 \
                or self.augment_wander < 0 or self.freeze_discriminator < 0:
            raise ValueError("r1_weight, freeze_discriminator and the augment_* settings must be >= 0")
        self.discriminator_scales = tuple(int(s) for s in self.discriminator_scales)
        if self.label_codes is not None:
            self.label_codes = [c.upper() for c in self.label_codes]
        if self.exclude_codes is not None:
            self.exclude_codes = sorted(c.upper() for c in self.exclude_codes)
        if self.records is not None:
            self.records = sorted(int(r) for r in self.records)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Experiment:
    """One learning-rate configuration of the research and where its outputs go."""

    name: str
    folder: str
    trainer_folder: str
    lr_generator: float
    lr_discriminator: float


EXPERIMENTS = (
    Experiment("Initial", "Rare_GAN", "arrhythmia_gan_outputs", **INITIAL),
    Experiment("Modified", "Rare_GAN_Improved", "arrhythmia_gan_outputs_tuned", **MODIFIED),
)


@dataclass(frozen=True)
class Recipe:
    """A named, documented bundle of settings (see the module docstring for the two recipes)."""

    name: str
    summary: str
    settings: dict
    """TrainConfig fields shared by every run of the recipe."""
    budgets: dict[str, dict[str, dict]]
    """Per profile and stage ('pretrain', 'finetune'): epochs, steps_per_epoch (and any other field)."""
    pretrain: dict | None = None
    """TrainConfig fields of the pretraining run on every training-fold record (None: no pretraining)."""
    finetune: dict = field(default_factory=dict)
    """TrainConfig fields of the per-code run (fine-tuning when ``pretrain`` is set)."""
    pretraining_of: str | None = None
    """Another recipe whose pretraining stage this one shares (same run, same cache folder): a recipe
    that differs from it in fine-tuning only."""

    def __post_init__(self) -> None:
        if self.pretraining_of is None:
            return
        shared = get_recipe(self.pretraining_of)
        if not (self.pretrained and shared.pretrained):
            raise ValueError(f"recipe {self.name!r} shares the pretraining of {self.pretraining_of!r}: "
                             "both need a pretraining stage")
        if (self.settings, self.pretrain) != (shared.settings, shared.pretrain):
            raise ValueError(f"recipe {self.name!r} shares the pretraining of {self.pretraining_of!r} but its "
                             "settings or pretraining fields differ from that recipe's; only fine-tuning may differ")

    @property
    def pretrained(self) -> bool:
        return self.pretrain is not None

    def config(self, target, stage: str = "finetune", profile: str = "full", **overrides) -> TrainConfig:
        """The TrainConfig of ``stage`` ('pretrain' or 'finetune') of this recipe for ``target``.

        ``overrides`` (learning rates, seed, data_dir, name, ...) win over the recipe's settings.
        """
        if stage not in ("pretrain", "finetune"):
            raise ValueError(f"stage must be 'pretrain' or 'finetune', got {stage!r}")
        if stage == "pretrain" and not self.pretrained:
            raise ValueError(f"recipe {self.name!r} has no pretraining stage")
        if stage == "pretrain" and self.pretraining_of:
            return get_recipe(self.pretraining_of).config(target, stage, profile, **overrides)
        if profile not in self.budgets:
            raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(self.budgets)}")
        stage_fields = self.pretrain if stage == "pretrain" else self.finetune
        values = {**self.settings, **stage_fields, **self.budgets[profile][stage], "recipe": self.name,
                  "target": ALL_RECORDS if stage == "pretrain" else target, **overrides}
        return TrainConfig(**values)


def _budget(pretrain: tuple[int, int] | None, finetune: tuple[int, int]) -> dict:
    stages = {"finetune": {"epochs": finetune[0], "steps_per_epoch": finetune[1]}}
    if pretrain:
        stages["pretrain"] = {"epochs": pretrain[0], "steps_per_epoch": pretrain[1]}
    return stages


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a clear error listing the known ones otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]


RECIPES: dict[str, Recipe] = {
    "research": Recipe(
        name="research",
        summary="the research's inception/residual GAN, one per code, trained from scratch",
        settings={"architecture": "research", "generator_kernel_size": 5, "generator_upsample": "transpose",
                  "lead_consistent": False, "diff_augment": False, "r1_weight": 0.0, "conditional": False,
                  "latent_dim": 100, "batch_size": 64, "loss": "nonsaturating"},
        budgets={"test": _budget(None, (2, 2)), "quick": _budget(None, (20, 25)), "full": _budget(None, (100, 20))},
    ),
    "beat": Recipe(
        name="beat",
        summary="beat-and-rhythm generator + multi-scale discriminator, pretrained on every record, fine-tuned per code",
        settings={"architecture": "beat", "latent_dim": 128, "conditional": True, "diff_augment": True,
                  "augment_gain": 0.2, "augment_shift_s": 0.3, "r1_weight": 0.1, "r1_every": 4, "beta_2": 0.99,
                  "batch_size": 64, "discriminator_scales": (1, 4)},
        pretrain={**INITIAL},
        finetune={"freeze_discriminator": 2},
        budgets={"test": _budget((1, 2), (1, 2)), "quick": _budget((5, 20), (2, 20)),
                 "full": _budget((60, 100), (10, 50))},
    ),
}
RECIPES["beat_ectopic"] = dataclasses.replace(
    RECIPES["beat"], name="beat_ectopic", settings={**RECIPES["beat"].settings, "beat_rhythm": "ectopic"},
    summary="the default recipe with template-driven ectopic timing and per-beat RR jitter (a candidate)")
RECIPES["beat_matched"] = dataclasses.replace(
    RECIPES["beat"], name="beat_matched",
    settings={**RECIPES["beat"].settings, "beat_visible": True, "stats_weight": 1.0},
    summary="the default recipe with visible beats and summary-statistic matching (RR, band powers) in both stages")
RECIPES["beat_band"] = dataclasses.replace(
    RECIPES["beat"], name="beat_band", pretraining_of="beat",
    finetune={**RECIPES["beat"].finetune, "stats_weight": 1.0, "matched_statistics": ("band",)},
    summary="the default recipe fine-tuned with band-power matching (shares its pretraining; a candidate)")
RECIPES["beat_visible_ectopic"] = dataclasses.replace(
    RECIPES["beat"], name="beat_visible_ectopic",
    settings={**RECIPES["beat"].settings, "beat_visible": True, "beat_rhythm": "ectopic", "stats_weight": 1.0,
              "matched_statistics": ("band",)},
    summary="the default recipe with visible beats, ectopic timing and band-power matching in both stages (a candidate)")
RECIPES["beat_visible_ectopic_rr"] = dataclasses.replace(
    RECIPES["beat_visible_ectopic"], name="beat_visible_ectopic_rr", pretraining_of="beat_visible_ectopic",
    finetune={**RECIPES["beat_visible_ectopic"].finetune, "matched_statistics": ("rr", "band")},
    summary="beat_visible_ectopic's pretraining fine-tuned with RR and band-power matching (a candidate)")
RECIPES["beat_visible_ectopic_init"] = dataclasses.replace(
    RECIPES["beat_visible_ectopic"], name="beat_visible_ectopic_init",
    settings={**RECIPES["beat_visible_ectopic"].settings, "ectopic_start": 0.3, "ectopic_rate": 10.0},
    summary="beat_visible_ectopic with prematurity and pause started at 0.3 and their own learning-rate factor 10 "
            "(a candidate)")
RECIPES["beat_lead_field"] = dataclasses.replace(
    RECIPES["beat_visible_ectopic_init"], name="beat_lead_field",
    settings={**RECIPES["beat_visible_ectopic_init"].settings, "lead_rank": 4},
    summary="beat_visible_ectopic_init with beats and residual drawn as 4 cardiac sources through a per-ECG lead "
            "field (a candidate)")
RECIPES["beat_matched_lead_field"] = dataclasses.replace(
    RECIPES["beat_matched"], name="beat_matched_lead_field",
    settings={**RECIPES["beat_matched"].settings, "lead_rank": 4},
    summary="beat_matched (free rhythm head) with beats and residual drawn as 4 cardiac sources through a per-ECG "
            "lead field (a candidate)")


def _matching_fine_tuning(base: str, name: str, statistics: tuple[str, ...], summary: str) -> Recipe:
    """``base``'s pretraining (shared) fine-tuned matching ``statistics`` instead."""
    spec = RECIPES[base]
    return dataclasses.replace(spec, name=name, pretraining_of=spec.pretraining_of or base,
                               finetune={**spec.finetune, "matched_statistics": statistics}, summary=summary)


RECIPES["beat_matched_lead_field_detail"] = _matching_fine_tuning(
    "beat_matched_lead_field", "beat_matched_lead_field_detail", ("rr", "band", "rr_jumps", "roughness"),
    "beat_matched_lead_field's pretraining fine-tuned also matching RR jumps (pNN50, largest change) and per-lead "
    "roughness (a candidate)")
RECIPES["beat_matched_lead_field_agree"] = _matching_fine_tuning(
    "beat_matched_lead_field_detail", "beat_matched_lead_field_agree", ("rr", "band", "rr_jumps", "roughness", "beats"),
    "beat_matched_lead_field_detail with beat agreement: every placed beat a steep lead-II QRS, nothing else as steep "
    "(a candidate)")
RECIPES["beat_matched_lead_field_agree_welch"] = _matching_fine_tuning(
    "beat_matched_lead_field_agree", "beat_matched_lead_field_agree_welch",
    ("rr", "band_welch", "rr_jumps", "roughness", "beats"),
    "beat_matched_lead_field_agree with the band-power shares matched as the realism features measure them (Welch; "
    "a candidate)")
RECIPES["beat_matched_lead_field_agree_bounded"] = dataclasses.replace(
    RECIPES["beat_matched_lead_field_agree"], name="beat_matched_lead_field_agree_bounded",
    finetune={**RECIPES["beat_matched_lead_field_agree"].finetune, "agreement_floor": 0.5},
    summary="beat_matched_lead_field_agree with the beat-agreement penalty bounded (reference slope at least half "
            "the ECG's steepest; a candidate)")
RECIPES["beat_matched_lead_field_morph"] = _matching_fine_tuning(
    "beat_matched_lead_field_agree_bounded", "beat_matched_lead_field_morph",
    ("rr", "band", "rr_jumps", "roughness", "beats", "morphology"),
    "beat_matched_lead_field_agree_bounded also matching the mean beat's shape, every 50 ms per lead (a candidate)")
DEFAULT_RECIPE = "beat"


__all__ = ["TrainConfig", "Experiment", "EXPERIMENTS", "Recipe", "RECIPES", "DEFAULT_RECIPE", "get_recipe", "INITIAL", "MODIFIED", "ALL_RECORDS"]
