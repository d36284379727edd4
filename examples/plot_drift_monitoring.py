"""
===========================================
Watching a sensor grid for drift, and refit
===========================================

A plant's 6x6 grid of sensors streams one row of readings at a time. A
:class:`~sklearn_diffusion.DriftMonitor` over a fitted
:class:`~sklearn_diffusion.DiffusionOutlierDetector` keeps, for every sensor,
a CUSUM of how much the sensor disagrees with its neighbours (its
:meth:`~sklearn_diffusion.DiffusionOutlierDetector.feature_scores`, scaled
on reference rows), raises an alarm when one crosses its threshold
(calibrated to one false alarm per 1,000 rows) and names the sensor. Then the
loop closes: the sensor in alarm is re-fitted on recent rows with
:meth:`~sklearn_diffusion.LocalizedDiffusionEstimator.refit_features`, the
monitor is calibrated again, and the watch goes on.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np

from sklearn_diffusion import DiffusionOutlierDetector, DriftMonitor, LocalizedDiffusionEstimator

FAST = bool(os.environ.get("SKD_DOCS_FAST"))

# %%
# A Gaussian field on the grid
# ----------------------------
# Precision ``Q = I + L`` (``L`` the grid's graph Laplacian): each sensor
# depends on the others only through its four neighbours; its conditional
# standard deviation given them is ``1 / sqrt(Q_jj)``.
side = 6
d = side * side
grid = np.arange(d).reshape(side, side)
adjacency = np.zeros((d, d))
for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
    adjacency[a.ravel(), b.ravel()] = adjacency[b.ravel(), a.ravel()] = 1
Q = np.eye(d) + np.diag(adjacency.sum(1)) - adjacency
rng = np.random.default_rng(0)


def readings(n):
    return rng.multivariate_normal(np.zeros(d), np.linalg.inv(Q), size=n)


# %%
# Fit the detector, then the monitor on *other* fault-free rows
# -------------------------------------------------------------
# The monitor's thresholds come from resampling its reference rows; rows the
# detector was trained on look more normal than new ones, so keep them apart.
# ``shared=False``: one network per sensor, fitted in blocks of 6, so that a
# refit after an alarm re-trains only the blocks that read the sensor (with
# the lattice's default shared windows, one network serves every sensor and a
# refit re-trains it whole).
estimator = LocalizedDiffusionEstimator(
    locality=(side, side), radius=1, shared=False, block_size=6,
    max_iter=300 if FAST else 1000, random_state=0,
)
detector = DiffusionOutlierDetector(estimator, method="score_norm", n_levels=8).fit(readings(1000))
monitor = DriftMonitor(detector, false_alarm_rate=1e-3, random_state=0).fit(readings(1000))

# %%
# A stream with a drifting sensor
# -------------------------------
# From row 500 sensor 14 reads half of its deviation from the mean: a gain
# change that keeps it well inside its usual range, so no single reading
# looks odd. The stream arrives in batches of 20 rows; nothing of past rows
# is stored but each sensor's CUSUM sums.
onset, sensor = 500, 14
stream = readings(1500)
stream[onset:, sensor] *= 0.5
history = []
for start in range(0, len(stream), 20):
    result = monitor.update(stream[start:start + 20])
    history.append(result.statistic / result.threshold)
    if result.is_drift:
        break
print(f"alarm at row {result.alarm_row} ({result.alarm_row - onset} rows after the change), "
      f"sensors in alarm: {result.sensors.tolist()}")

# %%
# Each sensor's evidence, in units of its threshold: the drifting sensor
# climbs out of the pack once the change starts.
history = np.array(history)
rows = 20 * np.arange(1, len(history) + 1)
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(rows, np.delete(history, sensor, axis=1), color="0.75", linewidth=0.8)
ax.plot(rows, history[:, sensor], color="C3", linewidth=2, label=f"sensor {sensor}")
ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="threshold")
ax.axvline(onset, color="C0", linestyle=":", label="change")
ax.set_xlabel("row")
ax.set_ylabel("CUSUM / threshold")
ax.legend(loc="upper left")
fig.tight_layout()

# %%
# Close the loop: re-fit the sensor in alarm on recent rows
# ---------------------------------------------------------
# Suppose the change is accepted (the sensor was re-calibrated and now reads
# this way). ``features_to_refit`` lists the sensors in alarm;
# ``refit_features`` re-trains only the sub-models that read them, on the rows
# recorded since the alarm, and keeps every other sub-model as it was. The
# monitor is then fitted again on the newest rows (not those of the refit).
recent = stream[result.alarm_row + 1:]
features = monitor.features_to_refit(max_features=1)
start = time.perf_counter()
detector.estimator_.refit_features(recent, features)
print(f"refit of sensor(s) {features.tolist()}: {time.perf_counter() - start:.1f} s")
newer = readings(1000)
newer[:, sensor] *= 0.5
monitor.fit(newer)

# %%
# The watch goes on: 500 more rows with the sensor as it now reads. Its
# evidence is back among the other sensors' (a false alarm can still come,
# about once every 1,000 rows).
after = readings(500)
after[:, sensor] *= 0.5
result = monitor.update(after)
evidence = result.statistic / result.threshold
print(f"after the refit, {result.n_rows} rows: sensor {sensor} at {evidence[sensor]:.2f} of its "
      f"threshold, the others at most {np.delete(evidence, sensor).max():.2f}")
plt.show()
