"""Director LoRA training and the dataset builder (`dimensionx train`, `dimensionx make-dataset`)."""
