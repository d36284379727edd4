# Record: benchmarks/results/studies/localized_speed.md (ring fields).
# Ran at ed6b425. Not maintained.
"""Issue 13 part 5 study: default localized fit on ring fields of 256 and 1,024 sites, split by stage (cProfile)."""
import cProfile, pstats, sys, time
sys.path.insert(0, "benchmarks")
from _fields import field_precision, field_sample
from sklearn_diffusion import LocalizedDiffusionEstimator
for d in [256, 1024]:
    X, cov = field_sample(field_precision("ring", d), 2000, seed=0)
    est = LocalizedDiffusionEstimator(locality="ring", radius=2, random_state=0)
    pr = cProfile.Profile(); s = time.perf_counter(); pr.enable(); est.fit(X); pr.disable()
    wall = time.perf_counter() - s
    st = pstats.Stats(pr)
    get = lambda name: max((v[3] for k, v in st.stats.items() if k[2] == name), default=0.0)
    print(f"d={d} fit={wall:.1f}s per_coord={wall/d:.3f}s train={get('_train_blocks'):.1f}s "
          f"gaussianizer={get('fit_gaussianizer'):.1f}s select={get('_select_smoothing'):.1f}s "
          f"blocks={len(est.blocks_)} max_iter_taken={est.n_iter_}", flush=True)
