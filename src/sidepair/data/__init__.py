"""Data: volumes, label maps, dataset formats, sides, the phantom and the preprocessed store."""
