"""score_samples of 10,000 x 16 rows with and without the reference mixture (exact trace, medians of 3)."""
import time, numpy as np, torch
from sklearn_diffusion import BootstrappedScoreEstimator
torch.set_num_threads(2)
rng=np.random.default_rng(0)
centres=rng.normal(scale=3,size=(8,16))
def mix(n, r): return centres[r.integers(8,size=n)] + r.normal(size=(n,16))
for name,(X,Xt) in {"normal": (rng.normal(size=(2000,16)), np.random.default_rng(1).normal(size=(10000,16))),
                    "8-blob": (mix(2000,rng), mix(10000,np.random.default_rng(1)))}.items():
    for ref in ["mixture","normal"]:
        est=BootstrappedScoreEstimator(max_iter=100, divergence="exact", reference=ref, column_transform="gaussianize", random_state=0).fit(X)
        ts=[]
        for _ in range(3):
            s=time.perf_counter(); est.score_samples(Xt); ts.append(time.perf_counter()-s)
        print(f"data {name:7s} reference {ref:8s} k={len(est.reference_weights_):2d} exact median {np.median(ts):.2f} s runs {np.round(ts,2).tolist()}", flush=True)
