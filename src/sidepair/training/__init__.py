"""The one training loop used by pretraining and segmentation, with checkpoints and logs."""
