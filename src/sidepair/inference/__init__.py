"""Inference: the one path from a scan to a mask (predictor), sliding windows, resampling back, export."""
