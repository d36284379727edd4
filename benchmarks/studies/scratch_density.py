"""Scratch: try density-quality ideas on the demo split and digits-64."""
import math, sys, time
import numpy as np, torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn_diffusion import BootstrappedScoreEstimator
from sklearn_diffusion._utils import to_tensor
from sklearn_diffusion.likelihood import log_density
torch.set_num_threads(2)

def demo():
    X, _ = load_digits(return_X_y=True)
    a, b = train_test_split(X, test_size=0.25, random_state=0)
    p = PCA(15, random_state=0).fit(a)
    return p.transform(a), p.transform(b)

def digits64():
    X, _ = load_digits(return_X_y=True)
    X = (X + np.random.default_rng(0).uniform(size=X.shape)) / 17
    return train_test_split(X, test_size=0.5, random_state=0)

def smoothed_ll(est, X, t0, n_steps=16):
    """log p_hat(x) = log p_t0(a x) + d log a  (x0 + sqrt(e^{2t}-1) z)."""
    Z = (X - est.mean_) / est.scale_
    a = math.exp(-t0)
    model = est.model_
    with torch.no_grad():
        lp = log_density(est._score_fn(model), est._score_div_fn(model), to_tensor(Z * a, "cpu"),
                         t_min=t0, t_max=est.t_max, n_steps=n_steps)
    return lp.numpy().astype(float) + Z.shape[1] * math.log(a) - np.log(est.scale_).sum()

if __name__ == "__main__":
    name = sys.argv[1]
    Xtr, Xte = {"demo": demo, "digits64": digits64}[name]()
    kw = eval("dict(" + (sys.argv[2] if len(sys.argv) > 2 else "") + ")")
    t = time.perf_counter()
    est = BootstrappedScoreEstimator(random_state=0, **kw).fit(Xtr)
    print(name, kw, "fit %.1fs iters %d best %d" % (time.perf_counter() - t, est.n_iter_, est.best_iter_))
    for t0 in [1e-3, 3e-3, 1e-2, 2e-2, 4e-2, 8e-2, 0.15]:
        print(" t0=%.3g test %.3f train %.3f" % (t0, smoothed_ll(est, Xte, t0).mean(), smoothed_ll(est, Xtr[:1000], t0).mean()), flush=True)

def ensemble_ll(ests, X, t0, n_steps=16):
    from sklearn_diffusion.likelihood import exact_divergence, hutchinson_divergence
    est = ests[0]
    Z = (X - est.mean_) / est.scale_
    a = math.exp(-t0)
    fns = [e._score_fn(e.model_) for e in ests]
    score_fn = lambda x, t: sum(f(x, t) for f in fns) / len(fns)
    d = Z.shape[1]
    div = exact_divergence(score_fn, d) if d <= 16 else hutchinson_divergence(score_fn, torch.as_tensor(est.probes_, dtype=torch.float32))
    with torch.no_grad():
        lp = log_density(score_fn, div, to_tensor(Z * a, "cpu"), t_min=t0, t_max=est.t_max, n_steps=n_steps)
    return lp.numpy().astype(float) + d * math.log(a) - np.log(est.scale_).sum()
