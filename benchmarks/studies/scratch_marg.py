import math, sys, time
import numpy as np, torch
from scipy.special import log_ndtr, ndtri_exp
from scipy.stats import norm
sys.path.insert(0, "benchmarks/studies")
from scratch_density import demo, digits64, smoothed_ll
from sklearn_diffusion import BootstrappedScoreEstimator
torch.set_num_threads(2)

class Gauss:
    def __init__(self, m=1000, grid=np.logspace(-2.5, 0, 16)):
        self.m, self.grid = m, grid
    def fit(self, X):
        self.mu, self.sd = X.mean(0), X.std(0)
        Z = (X - self.mu) / self.sd
        rng = np.random.default_rng(0)
        idx = rng.permutation(len(Z))[:self.m]
        self.ref = Z[idx].T.copy(); self.m = self.ref.shape[1]
        self.h = np.empty(X.shape[1])
        for j in range(X.shape[1]):
            v = self.ref[j]
            best = -np.inf
            D = (v[:, None] - v[None]) ** 2
            for h in self.grid:  # LOO likelihood against the quantile reference
                L = -0.5 * D / h**2 - math.log(h) - 0.5 * math.log(2 * math.pi)
                np.fill_diagonal(L, -np.inf)
                ll = np.logaddexp.reduce(L, axis=1) - math.log(self.m - 1)
                s = ll.mean()
                if s > best: best, self.h[j] = s, h
        return self
    def transform(self, X):
        Z = (X - self.mu) / self.sd
        out = np.empty_like(Z); lj = np.zeros(len(Z))
        for j in range(Z.shape[1]):
            u = (Z[:, j][:, None] - self.ref[j][None]) / self.h[j]
            lcdf = np.logaddexp.reduce(log_ndtr(u), axis=1) - math.log(self.m)
            lsf = np.logaddexp.reduce(log_ndtr(-u), axis=1) - math.log(self.m)
            z = np.where(lcdf < lsf, ndtri_exp(lcdf), -ndtri_exp(lsf))
            lpdf = np.logaddexp.reduce(norm.logpdf(u), axis=1) - math.log(self.m) - math.log(self.h[j])
            out[:, j] = z
            lj += lpdf - norm.logpdf(z)
        return out, lj - np.log(self.sd).sum()

if __name__ == "__main__":
    name = sys.argv[1]
    Xtr, Xte = {"demo": demo, "digits64": digits64}[name]()
    kw = eval("dict(" + (sys.argv[2] if len(sys.argv) > 2 else "") + ")")
    g = Gauss().fit(Xtr)
    print("h", np.round(g.h, 3))
    Ttr, ljtr = g.transform(Xtr); Tte, ljte = g.transform(Xte)
    print("marginal-only test", (norm.logpdf(Tte).sum(1) + ljte).mean())
    t = time.perf_counter()
    est = BootstrappedScoreEstimator(random_state=0, **kw).fit(Ttr)
    print(name, kw, "fit %.1fs iters %d best %d" % (time.perf_counter() - t, est.n_iter_, est.best_iter_))
    for t0 in [1e-3, 3e-3, 1e-2, 2e-2, 4e-2, 8e-2, 0.15]:
        print(" t0=%.3g test %.3f train %.3f" % (t0, (smoothed_ll(est, Tte, t0) + ljte).mean(), (smoothed_ll(est, Ttr[:1000], t0) + ljtr[:1000]).mean()), flush=True)
