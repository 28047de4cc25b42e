"""Networks: the shared encoder, the siamese side-pair model and (later) the U-Net."""

from sidepair.models.encoder import Encoder
from sidepair.models.siamese import Siamese

__all__ = ["Encoder", "Siamese"]
