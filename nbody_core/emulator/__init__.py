"""Emulators: fast learned surrogates of the simulator, trained on its own ensembles.

Contract: ``load_training_data(path)`` reads an ensemble npz (inputs: the swept numeric
parameters; outputs: chosen summaries; members over the energy-error target dropped and
counted); ``train_emulator(data, TrainConfig(...))`` returns
an :class:`Emulator` (a deep ensemble of small Equinox MLPs, trained with Optax, predicting
mean and sd of each summary for a new member) and a :class:`TrainingReport` (split, loss
curve, test metrics beside an exact-GP baseline); ``save_emulator`` / ``load_emulator`` use a
versioned npz + JSON header, no pickle. ``nbody_core.emulator.inference`` uses an emulator
as the forward model of a posterior and checks it against the simulator.
"""

from .data import (
    DEFAULT_ENERGY_TOLERANCE as DEFAULT_ENERGY_TOLERANCE,
    DEFAULT_OUTPUTS as DEFAULT_OUTPUTS,
    MIN_MEMBERS as MIN_MEMBERS,
    Split as Split,
    TrainingData as TrainingData,
    load_training_data as load_training_data,
    spec_fingerprint as spec_fingerprint,
    split_members as split_members,
    training_data_from_arrays as training_data_from_arrays,
)
from .gp import GPModel as GPModel, fit_gp as fit_gp, gp_predict as gp_predict
from .model import (
    FORMAT as FORMAT,
    FORMAT_VERSION as FORMAT_VERSION,
    Emulator as Emulator,
    ExtrapolationWarning as ExtrapolationWarning,
    OUTSIDE_ACTIONS as OUTSIDE_ACTIONS,
    TrainConfig as TrainConfig,
    TrainingReport as TrainingReport,
    emulator_npz_bytes as emulator_npz_bytes,
    evaluate as evaluate,
    load_emulator as load_emulator,
    save_emulator as save_emulator,
    train_emulator as train_emulator,
)

__all__ = [
    "DEFAULT_ENERGY_TOLERANCE", "DEFAULT_OUTPUTS", "MIN_MEMBERS", "Split", "TrainingData", "load_training_data", "spec_fingerprint",
    "split_members", "training_data_from_arrays", "GPModel", "fit_gp", "gp_predict", "FORMAT",
    "FORMAT_VERSION", "Emulator", "ExtrapolationWarning", "OUTSIDE_ACTIONS", "TrainConfig", "TrainingReport",
    "emulator_npz_bytes", "evaluate",
    "load_emulator", "save_emulator", "train_emulator",
]
