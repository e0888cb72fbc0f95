"""TSX-MedTrans trainer: data preparation, the two LoRA stages, and evaluation."""
