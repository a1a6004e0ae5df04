"""The settings of a BDCMF fit: one dataclass that the fitting functions, the TOML spec of
``pyrobnn recommend fit`` and the run's metadata all derive from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ...utils.validation import check_choice, check_int, check_number

__all__ = ["BDCMFSettings", "METHODS", "ESTIMATORS"]

#: method -> (uses the social graph, uses item content, item factors free of the content code)
METHODS = {
    "bdcmf": (True, True, True),     # ratings + social graph + content (Xiao et al. 2019)
    "ctr": (False, True, True),      # ratings + content, no social graph (CTR/CVAE-style)
    "pmf": (False, False, True),     # ratings only: weighted MF, MAP
    "content": (False, True, False),  # content only: v_j = E[z_j | x_j], users fitted to it
}
ESTIMATORS = ("point", "full")


@dataclass
class BDCMFSettings:
    """Hyperparameters of BDCMF and of its two estimators.

    Model (REFERENCE §4): ``K`` latent dimensions; prior precisions ``lambda_u``, ``lambda_g``;
    ``lambda_v`` ties ``v_j`` to the content code ``z_j``; ``lambda_q`` weights the social
    likelihood against the ratings; confidences ``psi1 > psi2 > 0`` (ratings) and
    ``psi3 > psi4 > 0`` (social).  Networks: ``hidden`` units in the encoder and decoder.

    Estimator (a) ``point``: ``epochs`` rounds of variational EM, each one closed-form sweep over
    u, g, v (E-step) and ``m_steps`` SGVB steps over the networks with ``batch_size`` items and
    learning rate ``lr``, after ``pretrain_steps`` steps of the networks alone as a VAE (as CDL and
    CVAE pre-train theirs).  Estimator (b) ``full``: the mean-field posterior, started from (a)'s fit
    (initial scales ``init_scale``), updated by ``full_updates``: ``"svi"`` (default) —
    ``full_steps`` joint SVI steps of all variational parameters and the networks (learning rate
    ``full_lr``) — or ``"cavi"`` — ``epochs`` rounds of exact coordinate ascent on q(u), q(g),
    q(v) plus ``m_steps`` SGVB steps of the networks.  Run to convergence, coordinate ascent
    shows that this model's mean-field optimum prunes latent dimensions (recall falls while the
    ELBO rises; :mod:`.full`), an optimum that SVI from the point estimate approaches but does
    not reach in ``full_steps``.  λ_v, λ_q (and PMF's λ_u, λ_v) are best chosen on a validation
    split of the training ratings (:mod:`.tuning`).
    ``method`` picks BDCMF or a baseline of :data:`METHODS`.
    """

    method: str = "bdcmf"
    estimator: str = "point"
    K: int = 20
    lambda_u: float = 0.1
    lambda_g: float = 0.1
    lambda_v: float = 10.0
    lambda_q: float = 1.0
    psi1: float = 1.0
    psi2: float = 0.01
    psi3: float = 1.0
    psi4: float = 0.01
    hidden: int = 100
    epochs: int = 20
    m_steps: int = 20
    pretrain_steps: int = 200
    batch_size: int = 256
    lr: float = 3e-3
    full_updates: str = "svi"
    full_steps: int = 200
    full_lr: float = 0.01
    init_scale: float = 0.05
    seed: int = 0

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        if self.full_updates not in ("cavi", "svi"):
            raise ValueError(f"full_updates must be 'cavi' or 'svi', got {self.full_updates!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {self.estimator!r}")
        for name in ("K", "hidden", "epochs", "batch_size", "full_steps"):
            check_int(name, getattr(self, name))
        check_int("m_steps", self.m_steps, minimum=0)
        check_int("pretrain_steps", self.pretrain_steps, minimum=0)
        check_int("seed", self.seed, minimum=0)
        for name in ("lambda_u", "lambda_g", "lambda_v", "psi1", "psi2", "psi3", "psi4", "lr", "full_lr",
                     "init_scale"):
            check_number(name, getattr(self, name), lo=0.0, lo_open=True)
        check_number("lambda_q", self.lambda_q, lo=0.0)
        if not self.psi1 > self.psi2:
            raise ValueError(f"psi1 must exceed psi2 (confidence of observed over unobserved ratings), got "
                             f"psi1={self.psi1}, psi2={self.psi2}")
        if not self.psi3 > self.psi4:
            raise ValueError(f"psi3 must exceed psi4 (confidence of edges over non-edges), got "
                             f"psi3={self.psi3}, psi4={self.psi4}")

    @property
    def uses_social(self) -> bool:
        return METHODS[self.method][0] and self.lambda_q > 0

    @property
    def uses_content(self) -> bool:
        return METHODS[self.method][1]

    @property
    def collaborative(self) -> bool:
        return METHODS[self.method][2]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = "settings") -> BDCMFSettings:
        """Settings from plain data; an unknown key is an error naming it and the known keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)
