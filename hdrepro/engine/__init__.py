"""Layer 4, the engine: data (``data``), models (``models``, with BetterCNN's pool and ReLU as one
CPU kernel in ``pooling``), the training loop (``train``),
many cells trained as one batched run (``batched``), result stores (``results``), executors
that run cells resumably (``executors``) and the cell protocol every study uses (``cells``).
Knows nothing of any study; imports only the layers below it."""
