"""Data: the folder formats users bring, the bundled synthetic sets, augmentation, torch datasets."""
