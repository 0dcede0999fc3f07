"""Robustness evaluation: seeded text attacks (Zeroé-style), image corruptions (ImageNet-C / CIFAR-C
conventions), and sweeps that report accuracy per noise type and severity."""
