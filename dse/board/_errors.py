"""The two exceptions of the board package: what a client sees, and what a decoder refuses."""
from __future__ import annotations


class BoardError(Exception):
    """A board call that did not produce a measurement.

    ``reason`` is short and machine-readable (the board runner records it):

    - ``refused``         nobody accepts connections at the board's address
    - ``timeout``         the board did not answer within the time allowed (or no board was free)
    - ``reset``           the connection closed before the whole reply arrived (board killed or reset)
    - ``malformed_reply`` the reply is not a valid message of this protocol
    - ``auth``            the board refused the token
    - ``too_large``       the request exceeds the board's message size cap
    - ``bad_request``     the board refused the request as malformed (or the arguments do not fit
                          the module)
    - ``config_mismatch`` the board runs another hardware configuration
    - ``busy``            the board has too many connections open
    - ``device_error``    the device refused or failed the program
    - ``token``           the token file is missing, empty or readable by every user
    - ``bad_board``       a board address is not ``host:port``

    ``board`` is the ``host:port`` the error concerns ("" when none does); the message names it.
    """

    def __init__(self, reason: str, message: str, board: str = ""):
        super().__init__(reason, message, board)      # the constructor's arguments: it pickles
        self.reason, self.message, self.board = reason, message, board

    def __str__(self) -> str:
        return f"board {self.board}: {self.message}" if self.board else self.message


class ProtocolError(ValueError):
    """Bytes that are not a valid message: ``reason`` is ``malformed``, ``too_large`` or
    ``version``. The only exception the message decoder raises."""

    def __init__(self, reason: str, message: str):
        super().__init__(reason, message)
        self.reason, self.message = reason, message

    def __str__(self) -> str:
        return self.message


class DeviceError(RuntimeError):
    """The device (simulated or real) refused or failed a program; ``reason`` is
    ``device_error`` or ``config_mismatch``."""

    def __init__(self, message: str, reason: str = "device_error"):
        super().__init__(message, reason)
        self.reason, self.message = reason, message

    def __str__(self) -> str:
        return self.message
