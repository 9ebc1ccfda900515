"""Sections 6-7 of the paper on finite data (MNIST, Shapeset): one module per experiment."""
