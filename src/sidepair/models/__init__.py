"""Networks: the shared encoder, the siamese side-pair model and (later) the U-Net."""

from sidepair.models.encoder import Encoder
from sidepair.models.siamese import Siamese
from sidepair.models.unet import UNet

__all__ = ["Encoder", "Siamese", "UNet"]
