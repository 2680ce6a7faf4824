"""The array types of the online path's modules (its input, TxColumns, is the transaction
contract's: finrisk.transactions)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]  # two-dimensional
