"""EigenwatchError: what every client call raises when the daemon answers an error."""


class EigenwatchError(Exception):
    """An error answered by the daemon: .code is the wire code ("NO_SUCH_STREAM", ...), .message
    the daemon's sentence. Connection problems raise ConnectionError/OSError instead."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
