"""unettui: a terminal lab for UNet segmentation hyper-parameter studies."""

__version__ = "0.1.0"
