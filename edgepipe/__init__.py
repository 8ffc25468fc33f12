"""edgepipe: take a trained TensorFlow/Keras model onto Google Coral hardware and prove it works there."""

__version__ = "0.1.0"
