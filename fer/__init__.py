"""fer: facial behaviour foundation models (MAE-SFER, MAE-DFER, FMAE-IAT, APViT) as one workflow."""

__version__ = "0.1.0"
