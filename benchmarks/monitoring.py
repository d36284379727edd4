"""Drift alarms per sensor: DriftMonitor against PCA-MSPC, CUSUM, Page-Hinkley and KS.

Fields (``_fields.py``, precision ``Q = I + L`` of the 8x8 lattice's graph
Laplacian, d = 64 sensors; 8x8 keeps the whole run near 20 minutes on one
CPU thread):

* ``lattice``: the Gaussian field ``N(0, Q^-1)``;
* ``sinh lattice``: ``y = sinh(x / sd)`` of it per sensor (heavy tails, as
  in ``lattice_fields.py``); faults that are sized in conditional standard
  deviations are planted in the latent Gaussian field.

Streams of 6,000 rows, independent rows of the field. At row 3,000 one sensor
``j`` (drawn per stream) changes while staying inside its marginal range:
``gain`` (``y_j <- m_j + 0.5 (y_j - m_j)``, ``m_j`` its training mean),
``offset`` (+1.5 conditional standard deviations ``1 / sqrt(Q_jj)`` of the
latent field), ``stuck`` (it keeps the value it read at row 3,000) and
``copy`` (it reads the value of one of its lattice neighbours). 20 seeded
streams per fault type and 10 fault-free streams per field; false alarms
are counted on the fault-free streams and on rows 0 to 2,999 of the faulty
ones (300,000 rows per field). Every method restarts after
each alarm (a user who resets after an alarm); the delay is the row of the
first alarm at or after 3,000 minus 3,000; no alarm by row 5,999 is a miss.

Methods, all fitted on the same 2,000 fault-free training rows:

* ``DriftMonitor``: ``DiffusionOutlierDetector(LocalizedDiffusionEstimator(
  locality=(8, 8), radius=1, block_size=8, max_iter=1000), method="score_norm",
  n_levels=8)``, monitor fitted on 2,000 other fault-free rows with
  ``false_alarm_rate=1e-3`` (its own calibration, by resampling those rows);
  names ``sensors[0]`` at the alarm row.
* ``PCA-MSPC``: standardized readings, components by 90% explained variance
  (on the training rows), Hotelling's T^2 and Q (SPE) per row; the sensor is
  the top of the contribution plot of the statistic further over its limit
  (Q: squared residual; T^2: ``z_j sum_a t_a p_aj / lambda_a``).
* ``CUSUM``: two-sided per sensor on the standardized readings, k = 0.5.
* ``Page-Hinkley``: per sensor, as ``river.drift.PageHinkley`` (both
  directions, delta = 0.005, fading 1 - 1e-4, 30 rows before it may alarm).
* ``KS``: per sensor, the Kolmogorov-Smirnov distance between the last 100
  rows and the training rows (alibi-detect's baseline), on 49 quantiles of
  the training rows (2% to 98%), a close approximation of the supremum;
  after a restart it waits for a full window.

The peers' thresholds (one for all sensors, on standardized readings; two
quantile levels for T^2 and Q) are set on 40 separate fault-free calibration
streams to the smallest that gives at most 1 false alarm per 1,000 rows.

Refit loop (``gain`` and ``offset``, ``--refit-streams`` streams per field and
fault): ``refit_features`` of a copy of the detector's estimator, for the
sensor the monitor named, on rows 3,000 to 4,999 of the stream, against a
full ``fit`` of the same estimator on the same rows; held-out mean
log-likelihood per coordinate on rows 5,000 to 5,999, and seconds. ``stuck``
and ``copy`` have no density (a constant column, two equal columns), so they
are not in the refit loop.

Run ``OMP_NUM_THREADS=1 python benchmarks/monitoring.py --threads 1``; ``--quick``
for a smoke run. Timings are on the shared 2-core CPU, beside other jobs.
"""

import copy
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA

import _cli
from _fields import field_precision, field_sample, sinh_field
from _report import machine, markdown, write
from sklearn_diffusion import DiffusionOutlierDetector, DriftMonitor, LocalizedDiffusionEstimator

SIDE, ONSET, LENGTH, RATE = 8, 3000, 6000, 1e-3
FAULTS = ("gain", "offset", "stuck", "copy")
FIELDS = ("lattice", "sinh lattice")
METHODS = ("DriftMonitor", "PCA-MSPC", "CUSUM", "Page-Hinkley", "KS")


def neighbours(j):
    r, c = divmod(j, SIDE)
    return [(r + dr) * SIDE + c + dc for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
            if 0 <= r + dr < SIDE and 0 <= c + dc < SIDE]


def make_stream(Q, cov, warp, seed, fault, train_mean):
    """A stream (LENGTH, d) and its faulty sensor (None when fault-free)."""
    latent, _ = field_sample(Q, LENGTH, seed)
    rng = np.random.default_rng(seed + 10_000)
    j = int(rng.integers(len(Q)))
    if fault == "offset":
        latent[ONSET:, j] += 1.5 / np.sqrt(Q[j, j])
    y = warp(latent)
    if fault == "gain":
        y[ONSET:, j] = train_mean[j] + 0.5 * (y[ONSET:, j] - train_mean[j])
    elif fault == "stuck":
        y[ONSET:, j] = y[ONSET, j]
    elif fault == "copy":
        y[ONSET:, j] = y[ONSET:, rng.choice(neighbours(j))]
    return y, (None if fault is None else j)


# --- peers: vectorized over streams, stepping row by row, restart on alarm ------------------

class Cusum:
    def __init__(self, shape):
        self.s = np.zeros((2, *shape))

    def step(self, z):
        self.s = np.maximum(self.s + np.stack([z, -z]) - 0.5, 0.0)
        return self.s.max(axis=0)

    def restart(self, mask):
        self.s[:, mask] = 0.0


class PageHinkley:  # river.drift.PageHinkley, mode="both"
    delta, alpha, min_rows = 0.005, 1 - 1e-4, 30

    def __init__(self, shape):
        self.shape = shape
        self.restart(np.ones(shape[0], bool))

    def restart(self, mask):
        if not hasattr(self, "n"):
            self.n, self.mean = np.zeros(self.shape[0]), np.zeros(self.shape)
            self.inc, self.dec = np.zeros(self.shape), np.zeros(self.shape)
            self.min_inc, self.max_dec = np.zeros(self.shape), np.zeros(self.shape)
        self.n[mask] = 0
        for a in (self.mean, self.inc, self.dec, self.min_inc, self.max_dec):
            a[mask] = 0.0
        self.min_inc[mask], self.max_dec[mask] = np.inf, -np.inf

    def step(self, z):
        self.n += 1
        self.mean += (z - self.mean) / self.n[:, None]
        dev = z - self.mean
        self.inc = self.alpha * self.inc + dev - self.delta
        self.dec = self.alpha * self.dec + dev + self.delta
        self.min_inc = np.minimum(self.min_inc, self.inc)
        self.max_dec = np.maximum(self.max_dec, self.dec)
        stat = np.maximum(self.inc - self.min_inc, self.max_dec - self.dec)
        return np.where((self.n > self.min_rows)[:, None], stat, 0.0)


def run_stateful(kind, Z, h):
    """First-alarm rows and named sensors, with restarts, of a peer on streams Z (S, n, d)."""
    S, n, d = Z.shape
    det = kind((S, d))
    alarms = [[] for _ in range(S)]
    for t in range(n):
        stat = det.step(Z[:, t])
        hit = stat.max(axis=1) > h
        for s in np.flatnonzero(hit):
            alarms[s].append((t, int(stat[s].argmax())))
        if hit.any():
            det.restart(hit)
    return alarms


GRID = np.linspace(0.02, 0.98, 49)


def ks_stats(P, window=100, grid=GRID):
    """KS distance (n, d) of the last ``window`` rows' levels ``P`` (n, d) against uniform."""
    below = np.concatenate([np.zeros((1, *P.shape[1:], len(grid))),
                            np.cumsum(P[..., None] <= grid, axis=0, dtype=np.int32)])
    counts = below[window:] - below[:-window]
    D = np.abs(counts / window - grid).max(axis=-1)
    return np.concatenate([np.zeros((window - 1, P.shape[1])), D])


def run_ks(D, h, window=100):
    alarms, last = [], -1
    over = D.max(axis=1) > h
    for t in np.flatnonzero(over):
        if t - last >= window:  # a full window since the restart
            alarms.append((int(t), int(D[t].argmax())))
            last = t
    return alarms


def run_memoryless(ratio, contrib):
    hit = np.flatnonzero(ratio > 1.0)
    return [(int(t), int(contrib[t].argmax())) for t in hit]


def rate(alarm_lists, rows):
    return sum(len(a) for a in alarm_lists) / rows


def calibrate(evaluate, low, high, rows):
    """Smallest threshold in [low, high] with at most RATE false alarms per row (bisection)."""
    for _ in range(30):
        mid = 0.5 * (low + high)
        if rate(evaluate(mid), rows) > RATE:
            low = mid
        else:
            high = mid
    return high


class Mspc:
    def __init__(self, train):
        self.mean, self.sd = train.mean(0), train.std(0)
        self.pca = PCA(0.90, svd_solver="full").fit((train - self.mean) / self.sd)

    def stats(self, Y):
        z = (Y - self.mean) / self.sd
        t = self.pca.transform(z)
        lam = self.pca.explained_variance_
        resid = z - self.pca.inverse_transform(t)
        return ((t**2 / lam).sum(1), (resid**2).sum(1),
                z * ((t / lam) @ self.pca.components_), resid**2)

    def limits(self, cal_stats, rows):
        T2 = np.concatenate([s[0] for s in cal_stats])
        SPE = np.concatenate([s[1] for s in cal_stats])

        def at(q):
            return np.quantile(T2, 1 - q), np.quantile(SPE, 1 - q)

        low, high = 0.0, RATE
        for _ in range(40):  # largest equal tail share with a joint rate <= RATE
            q = 0.5 * (low + high)
            hT, hQ = at(q)
            if np.mean((T2 > hT) | (SPE > hQ)) > RATE:
                high = q
            else:
                low = q
        return at(low)

    def alarms(self, stats, limits):
        T2, SPE, cT, cQ = stats
        rT, rQ = T2 / limits[0], SPE / limits[1]
        contrib = np.where((rQ >= rT)[:, None], cQ, cT)
        return run_memoryless(np.maximum(rT, rQ), contrib)


def monitor_alarms(monitor, Y, chunk=16):
    """DriftMonitor over a stream, restarted after each alarm; the named sensor at the alarm row."""
    monitor.reset()
    state = ("cusum_", "peak_", "alarm_row_", "n_rows_")
    alarms, start, since_reset = [], 0, 0
    while start < len(Y):
        before = {k: copy.copy(getattr(monitor, k)) for k in state}
        piece = Y[start:start + chunk]
        result = monitor.update(piece)
        if result.is_drift:
            offset = result.alarm_row - since_reset  # alarm row within this piece
            for k, v in before.items():
                setattr(monitor, k, v)
            named = monitor.update(piece[:offset + 1]).sensors[0]
            alarms.append((start + offset, int(named)))
            start += offset + 1
            since_reset = 0
            monitor.reset()
        else:
            start += len(piece)
            since_reset += len(piece)
    return alarms


def summarize(alarms_by_stream, faulty):
    """Delays, misses, correct-name share and pre-fault false alarms of faulty streams."""
    delays, named, false_alarms = [], [], 0
    for alarms, j in zip(alarms_by_stream, faulty):
        false_alarms += sum(t < ONSET for t, _ in alarms)
        after = [(t, s) for t, s in alarms if t >= ONSET]
        if after:
            delays.append(after[0][0] - ONSET)
            named.append(after[0][1] == j)
    return delays, named, false_alarms


def main(argv=None):
    parser = _cli.parser(__doc__, "monitoring", threads=1, merge=False,
                         quick="2 streams per fault type, 2 fault-free and 4 calibration streams, "
                               "300 steps, no refit loop")
    parser.add_argument("--fields", nargs="*", default=list(FIELDS))
    parser.add_argument("--streams", type=int, default=20, help="streams per fault type")
    parser.add_argument("--clean-streams", type=int, default=10)
    parser.add_argument("--calibration-streams", type=int, default=40)
    parser.add_argument("--refit-streams", type=int, default=1)
    args = _cli.parse(parser, argv)
    if args.quick:
        args.streams, args.clean_streams, args.calibration_streams = 2, 2, 4
        args.refit_streams = 0
    with _cli.threads(args.threads):
        run(args)


def run_field(args, name, field_index, Q, cov, rows, refit_rows, setup):
    d = len(Q)
    warp = (lambda x: x) if name == "lattice" else (lambda x: sinh_field(x, cov, 1.0))
    base = 1000 * field_index
    latent, _ = field_sample(Q, 4000, seed=base + 1)
    train, reference = warp(latent[:2000]), warp(latent[2000:])
    train_mean = train.mean(0)
    estimator = LocalizedDiffusionEstimator(
        locality=(SIDE, SIDE), radius=1, shared=False, block_size=8,  # per-sensor refits
        max_iter=300 if args.quick else 1000, random_state=0)
    start = time.perf_counter()
    detector = DiffusionOutlierDetector(estimator, method="score_norm", n_levels=8).fit(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    monitor = DriftMonitor(detector, false_alarm_rate=RATE, random_state=0).fit(reference)
    monitor_fit_s = time.perf_counter() - start
    print(f"{name}: detector {fit_s:.0f} s, monitor fit {monitor_fit_s:.1f} s", flush=True)

    def streams(kind, count, offset):
        out = [make_stream(Q, cov, warp, base + offset + s, kind, train_mean)
               for s in range(count)]
        return np.stack([y for y, _ in out]), [j for _, j in out]

    cal, _ = streams(None, args.calibration_streams, 100)
    cal_rows = cal.shape[0] * cal.shape[1]
    mean, sd = train.mean(0), train.std(0)
    levels = np.sort(train, axis=0)

    def to_levels(Y):
        return np.stack([np.searchsorted(levels[:, j], Y[..., j]) / len(levels)
                         for j in range(d)], axis=-1)

    mspc = Mspc(train)
    cal_stats = [mspc.stats(y) for y in cal]
    mspc_limits = mspc.limits(cal_stats, cal_rows)
    Zcal = (cal - mean) / sd
    h = {"CUSUM": calibrate(lambda h: run_stateful(Cusum, Zcal, h), 0.0, 100.0, cal_rows),
         "Page-Hinkley": calibrate(lambda h: run_stateful(PageHinkley, Zcal, h), 0.0, 500.0,
                                   cal_rows)}
    Dcal = [ks_stats(to_levels(y)) for y in cal]
    h["KS"] = calibrate(lambda h: [run_ks(D, h) for D in Dcal], 0.0, 1.0, cal_rows)
    setup[name] = {"detector_fit_s": fit_s, "monitor_fit_s": monitor_fit_s,
                   "pca_components": int(mspc.pca.n_components_),
                   "thresholds": {k: float(v) for k, v in h.items()},
                   "mspc_limits": [float(v) for v in mspc_limits]}
    print(f"  calibrated: {setup[name]}", flush=True)

    def all_alarms(Y):
        Z = (Y - mean) / sd
        start = time.perf_counter()
        out = {"DriftMonitor": [monitor_alarms(monitor, y) for y in Y]}
        monitor_s = time.perf_counter() - start
        out["PCA-MSPC"] = [mspc.alarms(mspc.stats(y), mspc_limits) for y in Y]
        out["CUSUM"] = run_stateful(Cusum, Z, h["CUSUM"])
        out["Page-Hinkley"] = run_stateful(PageHinkley, Z, h["Page-Hinkley"])
        out["KS"] = [run_ks(ks_stats(to_levels(y)), h["KS"]) for y in Y]
        return out, monitor_s

    clean, _ = streams(None, args.clean_streams, 200)
    clean_alarms, _ = all_alarms(clean)
    false_counts = {m: sum(len(a) for a in clean_alarms[m]) for m in METHODS}
    clean_rows = clean.shape[0] * clean.shape[1]
    per_fault, monitor_seconds = {}, 0.0
    for f_index, fault in enumerate(FAULTS):
        Y, faulty = streams(fault, args.streams, 300 + 100 * f_index)
        alarms, monitor_s = all_alarms(Y)
        monitor_seconds += monitor_s
        per_fault[fault] = (Y, faulty, alarms)
        for m in METHODS:
            false_counts[m] += summarize(alarms[m], faulty)[2]
        print(f"  {fault} done ({monitor_s:.0f} s for the monitor)", flush=True)
    fault_free_rows = clean_rows + ONSET * args.streams * len(FAULTS)
    for fault in FAULTS:
        Y, faulty, alarms = per_fault[fault]
        for m in METHODS:
            delays, named, _ = summarize(alarms[m], faulty)
            row = {"field": name, "fault": fault, "method": m,
                   "median_delay": float(np.median(delays)) if delays else "",
                   "p90_delay": float(np.percentile(delays, 90)) if delays else "",
                   "missed": f"{len(faulty) - len(delays)}/{len(faulty)}",
                   "false_per_1000": 1000 * false_counts[m] / fault_free_rows,
                   "named_first": float(np.mean(named)) if named else ""}
            rows.append(row)
            print(markdown([row], list(row)).splitlines()[-1], flush=True)
    setup[name]["fault_free_rows"] = fault_free_rows
    setup[name]["monitor_s_per_1000_rows"] = (
        1000 * monitor_seconds / (args.streams * len(FAULTS) * LENGTH))

    for fault in ("gain", "offset"):
        Y, faulty, alarms = per_fault[fault]
        for s in range(min(args.refit_streams, len(Y))):
            after = [(t, j) for t, j in alarms["DriftMonitor"][s] if t >= ONSET]
            named = after[0][1] if after else faulty[s]
            recent, held = Y[s, ONSET:ONSET + 2000], Y[s, ONSET + 2000:]
            model = copy.deepcopy(detector.estimator_)
            start = time.perf_counter()
            model.refit_features(recent, [named])
            refit_s = time.perf_counter() - start
            start = time.perf_counter()
            full = clone(estimator).fit(recent)
            full_s = time.perf_counter() - start
            ll = {k: float(np.mean(e.score_samples(held)) / d)
                  for k, e in (("stale", detector.estimator_), ("refit", model),
                               ("full", full))}
            row = {"field": name, "fault": fault, "stream": s, "named": named,
                   "faulty": faulty[s], "ll_stale": ll["stale"], "ll_refit": ll["refit"],
                   "ll_full": ll["full"], "full_minus_refit": ll["full"] - ll["refit"],
                   "refit_s": refit_s, "full_s": full_s, "time_ratio": refit_s / full_s}
            refit_rows.append(row)
            print(markdown([row], list(row)).splitlines()[-1], flush=True)



def run(args):
    d = SIDE * SIDE
    Q = field_precision("lattice", d)
    cov = np.linalg.inv(Q)
    rows, refit_rows, setup = [], [], {}
    for field_index, name in enumerate(args.fields):
        run_field(args, name, field_index, Q, cov, rows, refit_rows, setup)
    columns = ["field", "fault", "method", "median_delay", "p90_delay", "missed",
               "false_per_1000", "named_first"]
    table = markdown(rows, columns)
    refit_table = markdown(refit_rows, list(refit_rows[0])) if refit_rows else "(not run)"
    print("\n" + table + "\n\n" + refit_table)
    text = (
        f"# Drift monitoring (`benchmarks/monitoring.py{' --quick' * args.quick}`)\n\n"
        f"8x8 lattice fields (d = 64), streams of {LENGTH} rows, fault at row {ONSET}; "
        f"{args.streams} streams per fault type, {args.clean_streams} fault-free streams, "
        f"{args.calibration_streams} calibration streams per field; torch threads "
        f"{torch.get_num_threads()}, on the shared 2-core CPU beside other jobs. "
        "Delays in rows (median and 90th percentile over the detected streams); "
        "`missed`: no alarm by row 5,999; `false_per_1000`: false alarms per 1,000 "
        "fault-free rows (the fault-free streams and rows 0-2,999 of the faulty ones, "
        "restarting after each alarm); `named_first`: share of detections whose first "
        "named sensor is the faulty one. DriftMonitor uses its own calibration "
        "(`false_alarm_rate=1e-3` on 2,000 reference rows); the peers are set to at most "
        "1 per 1,000 on the calibration streams.\n\n" + table + "\n\n"
        "## Refit loop\n\n`refit_features` on the sensor the monitor named (rows "
        "3,000-4,999) against a full `fit` on the same rows; log-likelihood per coordinate "
        "on rows 5,000-5,999 (`stale`: the model fitted before the fault).\n\n"
        + refit_table + "\n")
    write(args.out, {"setup": setup, "machine": machine(), "rows": rows,
                     "refit": refit_rows}, text)


if __name__ == "__main__":
    main()
