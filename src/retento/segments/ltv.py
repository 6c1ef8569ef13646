"""Predicted purchases and lifetime value: BG/NBD and Gamma-Gamma (the `lifetimes` package) on BTYD values.

Only `lifetimes`' public API is used: the fitters, `conditional_expected_number_of_purchases_up_to_time` and
`conditional_expected_average_profit`; the discounted value is `discounted_value` below.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_CUSTOMERS = 20  # fewer than this and the fit says nothing
MIN_REPEAT = 10
MONTH_DAYS = 30  # a month of the LTV horizon, in the daily periods of the BTYD values


class NotEnoughData(ValueError):
    pass


@dataclass
class Prediction:
    expected_purchases: np.ndarray  # in the next `days` days, per customer
    ltv: np.ndarray | None  # discounted value over `months`, None when Gamma-Gamma could not be fitted
    params: dict[str, Any]


def discounted_value(purchases_by: Callable[[float], np.ndarray], value: np.ndarray, *, months: int,
                     discount_rate: float) -> np.ndarray:
    """Discounted cash flow over `months`: each month's expected purchases (the cumulative expectation
    `purchases_by(days)` at its end minus at its start) times the expected value of a purchase, discounted by
    `discount_rate` a month."""
    total = np.zeros(len(value))
    before = purchases_by(0.0)
    for month in range(1, months + 1):
        by_end = purchases_by(float(month * MONTH_DAYS))
        total += value * (by_end - before) / (1 + discount_rate) ** month
        before = by_end
    return total


def fit_predict(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray, monetary: np.ndarray, *,
                days: int, months: int, discount_rate: float, penalizer: float = 0.001) -> Prediction:
    """Fit on the shop's own customers and predict for the same customers (periods are days)."""
    # Loaded on first use: lifetimes brings pandas and scipy (~2 s and ~100 MB), which the API and worker
    # processes that never fit a model should not pay for.
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    if len(frequency) < MIN_CUSTOMERS or int((frequency > 0).sum()) < MIN_REPEAT:
        raise NotEnoughData(f"BG/NBD needs at least {MIN_CUSTOMERS} customers and {MIN_REPEAT} with a repeat "
                            "purchase")
    f, r, t = (np.asarray(a, dtype=float) for a in (frequency, recency, age))

    def purchases_by(horizon: float) -> np.ndarray:
        return np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, t), dtype=float)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter(penalizer_coef=penalizer)
        bgf.fit(f, r, t)
        expected = purchases_by(days)
        params: dict[str, Any] = {"bgnbd": {k: float(v) for k, v in bgf.params_.items()}}
        m = np.asarray(monetary, dtype=float)
        repeat = (f > 0) & (m > 0)
        ltv = None
        if int(repeat.sum()) >= MIN_REPEAT:
            ggf = GammaGammaFitter(penalizer_coef=penalizer)
            try:
                ggf.fit(f[repeat], m[repeat])
                # expected value of a purchase: Gamma-Gamma for repeat buyers; for one-time buyers (no repeat
                # amount to condition on) the mean over repeat buyers' expectations
                value = np.zeros(len(f))
                value[repeat] = np.asarray(ggf.conditional_expected_average_profit(f[repeat], m[repeat]), dtype=float)
                value[~repeat] = value[repeat].mean()
                ltv = discounted_value(purchases_by, value, months=months, discount_rate=discount_rate)
                ltv = np.clip(np.nan_to_num(ltv), 0, None)
                params["gamma_gamma"] = {k: float(v) for k, v in ggf.params_.items()}
            except Exception as exc:  # noqa: BLE001 - convergence failures of the optimiser on odd data
                params["gamma_gamma_error"] = str(exc)[:200]
    return Prediction(expected, ltv, params)
