"""TSX-MedTrans trainer: data preparation and the two LoRA stages (`tsx-train`)."""
