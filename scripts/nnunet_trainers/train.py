"""``nnUNetv2_train`` for the trainers in this folder, where nnU-Net's trainer lookup cannot run.

nnU-Net finds a trainer by importing every module under ``nnunetv2/training/nnUNetTrainer`` (then the
``nnUNet_extTrainer`` folders); the Primus trainers there import timm, which imports torchvision. With a
CPU-only torch and PyPI's torchvision wheel (built for CUDA torch) that import fails, and so does every
``nnUNetv2_train -tr`` of a trainer outside nnU-Net's top folder. This runs nnU-Net's own entry point,
``nnunetv2.run.run_training.run_training_entry``, with the same arguments as ``nnUNetv2_train``; only the
lookup is replaced by the classes in this folder (then nnU-Net's own lookup for any other name):

    python scripts/nnunet_trainers/train.py 501 2d 0 -tr nnUNetTrainer_1epoch_NoMirroring \
        -pretrained_weights FILE -device cpu

With a CUDA torch, ``nnUNet_extTrainer=scripts/nnunet_trainers nnUNetv2_train ...`` does the same.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnunetv2.run.run_training as run_training  # noqa: E402
from nnUNetTrainer_1epoch_NoMirroring import nnUNetTrainer_1epoch_NoMirroring  # noqa: E402

HERE = {"nnUNetTrainer_1epoch_NoMirroring": nnUNetTrainer_1epoch_NoMirroring}
nnunet_lookup = run_training.recursive_find_trainer_class_by_name


def find_trainer(name: str):
    """This folder's trainers by name; nnU-Net's lookup for the rest."""
    return HERE[name] if name in HERE else nnunet_lookup(name)


if __name__ == "__main__":
    run_training.recursive_find_trainer_class_by_name = find_trainer
    run_training.run_training_entry()
