"""
===================================================
Synthetic rows of a plant table with categories
===================================================

A log of a plant's machines mixes categories (the machine type, whether an
alarm was on), whole numbers (the shift) and measurements (temperature).
:class:`~sklearn_diffusion.BootstrappedScoreEstimator` takes the pandas
DataFrame as it is: its ``category``, ``object`` and ``bool`` columns are
modelled as categories (``categorical_features="from_dtype"``), ``sample``
returns a DataFrame with the same columns and dtypes, and
``sample_conditional`` draws rows for fixed values: here, rows of machine
type B on shift 3.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklearn_diffusion import BootstrappedScoreEstimator

FAST = bool(os.environ.get("SKD_DOCS_FAST"))

# %%
# A table of machine readings
# ---------------------------
# Type B machines run 3 degrees warmer than type A, type C 3 degrees cooler;
# every shift adds half a degree, and the alarm is on mostly on hot readings.
rng = np.random.default_rng(0)
n = 1500
kind = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
shift = rng.integers(1, 4, n)
temperature = np.select([kind == "A", kind == "B"], [60.0, 63.0], 57.0) + 0.5 * shift
temperature += rng.normal(size=n)
alarm = rng.random(n) < 1 / (1 + np.exp(-3 * (temperature - 63.5)))
table = pd.DataFrame({"machine": pd.Categorical(kind), "shift": shift,
                      "temperature": temperature, "alarm": alarm})
print(table.dtypes)

# %%
# Fit, and sample a synthetic table
# ---------------------------------
model = BootstrappedScoreEstimator(max_iter=500 if FAST else 4000, random_state=0).fit(table)
synthetic = model.sample(n, random_state=0)
print(synthetic.dtypes)
print(synthetic.head())

# %%
# The joint frequencies of machine and shift, and the alarm rate per machine,
# in the real and in the synthetic rows.
print(pd.concat({"real": pd.crosstab(table["machine"], table["shift"], normalize=True),
                 "synthetic": pd.crosstab(synthetic["machine"], synthetic["shift"],
                                          normalize=True)}, axis=1).round(3))
print(pd.DataFrame({"real": table.groupby("machine", observed=True)["alarm"].mean(),
                    "synthetic": synthetic.groupby("machine", observed=True)["alarm"].mean()})
      .round(3))

# %%
# Rows for fixed values
# ---------------------
# 1,000 rows of machine type B on shift 3: the fixed entries are given, the
# others (None or NaN) are drawn from the model given them.
query = pd.DataFrame({"machine": ["B"], "shift": [3], "temperature": [np.nan],
                      "alarm": [None]})
b3 = model.sample_conditional(query, n_samples=1000, random_state=0)
real_b3 = table[(table["machine"] == "B") & (table["shift"] == 3)]
print(f"alarm rate, B on shift 3: real {real_b3['alarm'].mean():.2f}, "
      f"drawn {b3['alarm'].mean():.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
bins = np.linspace(53, 68, 46)
for machine, colour in zip("ABC", ("tab:blue", "tab:orange", "tab:green")):
    axes[0].hist(table.loc[table["machine"] == machine, "temperature"], bins, color=colour,
                 alpha=0.35, density=True, label=f"{machine} real")
    axes[0].hist(synthetic.loc[synthetic["machine"] == machine, "temperature"], bins,
                 color=colour, histtype="step", density=True, label=f"{machine} synthetic")
axes[0].set(title="Temperature per machine type", xlabel="temperature")
axes[0].legend(fontsize=7)
axes[1].hist(real_b3["temperature"], bins, alpha=0.4, density=True, label="real rows")
axes[1].hist(b3["temperature"], bins, histtype="step", density=True, label="drawn rows")
axes[1].set(title="Machine B, shift 3", xlabel="temperature")
axes[1].legend(fontsize=7)
fig.tight_layout()
plt.show()
