"""Pretrained music networks run offline: musicnn and its VGG, ported to torch.

``checkpoint`` reads TensorFlow checkpoints with numpy, ``weights`` fetches, checks and
converts the weights the ``musicnn`` wheel ships, ``musicnn`` holds the networks and their
log-mel input, and ``embed`` turns audio files into cached clip embeddings.
"""
