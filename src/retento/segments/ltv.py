"""Predicted purchases and lifetime value: BG/NBD and Gamma-Gamma (the `lifetimes` package) on BTYD values."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_CUSTOMERS = 20  # fewer than this and the fit says nothing
MIN_REPEAT = 10


class NotEnoughData(ValueError):
    pass


@dataclass
class Prediction:
    expected_purchases: np.ndarray  # in the next `days` days, per customer
    ltv: np.ndarray | None  # discounted value over `months`, None when Gamma-Gamma could not be fitted
    params: dict[str, Any]


def fit_predict(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray, monetary: np.ndarray, *,
                days: int, months: int, discount_rate: float, penalizer: float = 0.001) -> Prediction:
    """Fit on the shop's own customers and predict for the same customers (periods are days)."""
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import _customer_lifetime_value

    if len(frequency) < MIN_CUSTOMERS or int((frequency > 0).sum()) < MIN_REPEAT:
        raise NotEnoughData(f"BG/NBD needs at least {MIN_CUSTOMERS} customers and {MIN_REPEAT} with a repeat "
                            "purchase")
    f, r, t = (np.asarray(a, dtype=float) for a in (frequency, recency, age))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter(penalizer_coef=penalizer)
        bgf.fit(f, r, t)
        expected = np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(days, f, r, t), dtype=float)
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
                value[repeat] = np.asarray(ggf.conditional_expected_average_profit(
                    pd.Series(f[repeat]), pd.Series(m[repeat])), dtype=float)
                value[~repeat] = value[repeat].mean()
                ltv = np.asarray(_customer_lifetime_value(
                    bgf, pd.Series(f), pd.Series(r), pd.Series(t), pd.Series(value), time=months,
                    discount_rate=discount_rate, freq="D"), dtype=float)
                ltv = np.clip(np.nan_to_num(ltv), 0, None)
                params["gamma_gamma"] = {k: float(v) for k, v in ggf.params_.items()}
            except Exception as exc:  # noqa: BLE001 - convergence failures of the optimiser on odd data
                params["gamma_gamma_error"] = str(exc)[:200]
    return Prediction(expected, ltv, params)
