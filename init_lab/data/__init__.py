"""Data files shipped with initlab: the bundled MNIST sample and its attribution."""
