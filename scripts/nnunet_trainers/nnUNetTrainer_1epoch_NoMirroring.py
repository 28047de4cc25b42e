"""A one-epoch nnU-Net trainer without mirroring, for a CPU smoke test of side-pair weights in nnU-Net.

nnU-Net finds it through ``nnUNet_extTrainer`` (a folder of extra trainers):

    nnUNet_extTrainer=scripts/nnunet_trainers nnUNetv2_train DATASET 2d 0 \
        -tr nnUNetTrainer_1epoch_NoMirroring -pretrained_weights FILE -device cpu

nnU-Net's default mirroring swaps left and right, and so swaps ``kidney_right`` and ``kidney_left``
labels; where labels carry sides, train without it (``nnUNetTrainerNoMirroring`` for a real run).
"""

import torch
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring import (
    nnUNetTrainerNoMirroring,
)


class nnUNetTrainer_1epoch_NoMirroring(nnUNetTrainerNoMirroring):  # noqa: N801 - nnU-Net's naming
    """``nnUNetTrainerNoMirroring`` for one epoch (250 iterations), as ``nnUNetTrainer_1epoch``."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
