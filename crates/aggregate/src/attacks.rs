//! Attacks: the vector the f Byzantine agents send, computed from the honest vectors (the
//! omniscient adversary of the robustness literature). All f send the same vector.

use crate::error::{Error, Result};
use crate::linalg::{dist2, mean, per_coordinate};
use crate::params::{Params, bad};
use crate::{Pipeline, validate};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

pub const ATTACKS: &[&str] =
    &["signflip", "ipm", "alie", "opt-ipm", "opt-alie", "mimic", "infinity", "gaussian", "labelflip"];

/// The line search of the optimised attacks: the τ that pushes the pipeline's output farthest
/// from the honest mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub target: Pipeline,
    pub evaluations: usize,
    pub tau_start: f64,
    pub factor: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attack {
    /// −mean(honest).
    SignFlip,
    /// Inner-product manipulation (Xie et al. 2020): −τ · mean(honest).
    Ipm {
        tau: f64,
    },
    /// A little is enough (Baruch et al. 2019): mean + τ · σ per coordinate, σ the sample
    /// standard deviation of the honest values (divided by h−1; zero for a single honest vector).
    Alie {
        tau: f64,
    },
    OptIpm(Search),
    OptAlie(Search),
    /// Copies honest vector `target`.
    Mimic {
        target: usize,
    },
    /// Every coordinate f64::MAX: the largest value that passes the input check (non-finite
    /// values are refused before any rule runs).
    Infinity,
    /// Independent N(μ, σ²) coordinates, seeded.
    Gaussian {
        mu: f64,
        sigma: f64,
    },
}

impl Attack {
    pub fn from_params(kind: &str, p: &Params, seed: u64) -> Result<Attack> {
        let search = || -> Result<Search> {
            let rule = p
                .str("rule")
                .ok_or_else(|| bad("rule", "the optimised attacks need the rule they target".into()))?;
            let pre: Vec<&str> =
                p.str("pre").map(|s| s.split(',').filter(|x| !x.is_empty()).collect()).unwrap_or_default();
            let factor = p.positive("factor", 2.0)?;
            if factor <= 1.0 {
                return Err(bad("factor", format!("must be above 1, got {factor}")));
            }
            Ok(Search {
                target: Pipeline::from_names(rule, &pre, p, seed)?,
                evaluations: p.usize("evaluations", 24)?.max(1),
                tau_start: p.positive("tau_start", 1.0)?,
                factor,
            })
        };
        Ok(match kind {
            "signflip" => Attack::SignFlip,
            "ipm" => Attack::Ipm { tau: p.f64("tau", 2.0)? },
            "alie" => Attack::Alie { tau: p.f64("tau", 1.5)? },
            "opt-ipm" => Attack::OptIpm(search()?),
            "opt-alie" => Attack::OptAlie(search()?),
            "mimic" => Attack::Mimic { target: p.usize("target", 0)? },
            "infinity" => Attack::Infinity,
            "gaussian" => Attack::Gaussian { mu: p.f64("mu", 0.0)?, sigma: p.positive("sigma", 1.0)? },
            "labelflip" => {
                return Err(bad(
                    "kind",
                    "label flipping acts on training data, not on vectors: use `phalanx federated --attack labelflip`".into(),
                ));
            }
            other => {
                return Err(Error::Unknown { what: "attack", name: other.into(), known: ATTACKS.join(", ") });
            }
        })
    }

    /// The Byzantine vector against `honest`, with `f` Byzantine agents.
    pub fn vector(&self, honest: &[Vec<f64>], f: usize, seed: u64) -> Result<Vec<f64>> {
        validate(honest)?;
        let out = match self {
            Attack::SignFlip => ipm(honest, 1.0),
            Attack::Ipm { tau } => ipm(honest, *tau),
            Attack::Alie { tau } => alie(honest, *tau),
            Attack::OptIpm(s) => s.run(honest, f, ipm)?,
            Attack::OptAlie(s) => s.run(honest, f, alie)?,
            Attack::Mimic { target } => honest
                .get(*target)
                .cloned()
                .ok_or_else(|| bad("target", format!("there are only {} honest vectors", honest.len())))?,
            Attack::Infinity => vec![f64::MAX; honest[0].len()],
            Attack::Gaussian { mu, sigma } => {
                let normal = Normal::new(*mu, *sigma).map_err(|e| bad("sigma", e.to_string()))?;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                (0..honest[0].len()).map(|_| normal.sample(&mut rng)).collect()
            }
        };
        if out.iter().any(|x| !x.is_finite()) {
            return Err(Error::Overflow("attack vector"));
        }
        Ok(out)
    }
}

fn ipm(honest: &[Vec<f64>], tau: f64) -> Vec<f64> {
    mean(honest).into_iter().map(|x| -tau * x).collect()
}

fn alie(honest: &[Vec<f64>], tau: f64) -> Vec<f64> {
    let h = honest.len() as f64;
    let m = mean(honest);
    let sd = per_coordinate(m.len(), |k| {
        if honest.len() < 2 {
            return 0.0;
        }
        let mu = honest.iter().map(|v| v[k]).sum::<f64>() / h;
        (honest.iter().map(|v| (v[k] - mu) * (v[k] - mu)).sum::<f64>() / (h - 1.0)).sqrt()
    });
    per_coordinate(m.len(), |k| m[k] + tau * sd[k])
}

impl Search {
    /// Expands τ by `factor` while the damage grows (then tries shrinking if the first step
    /// did not help), and spends the remaining evaluations on a golden-section search around
    /// the best τ found.
    fn run(&self, honest: &[Vec<f64>], f: usize, make: fn(&[Vec<f64>], f64) -> Vec<f64>) -> Result<Vec<f64>> {
        let reference = mean(honest);
        let budget = std::cell::Cell::new(self.evaluations);
        let left = || budget.get() > 0;
        let damage = |tau: f64| -> Result<f64> {
            budget.set(budget.get().saturating_sub(1));
            let bad = make(honest, tau);
            let mut all = honest.to_vec();
            all.extend(std::iter::repeat_n(bad, f));
            self.target.aggregate(&all, f).map(|a| dist2(&a.vector, &reference))
        };
        let (mut best_tau, mut best) = (self.tau_start, damage(self.tau_start)?);
        for step in [self.factor, 1.0 / self.factor] {
            let mut t = best_tau;
            while left() {
                t *= step;
                let v = damage(t)?;
                if v <= best {
                    break;
                }
                (best_tau, best) = (t, v);
            }
            if best_tau != self.tau_start {
                break;
            }
        }
        // Golden-section search for the maximum on [τ/factor, τ·factor].
        let g = (5f64.sqrt() - 1.0) / 2.0;
        let (mut a, mut b) = (best_tau / self.factor, best_tau * self.factor);
        let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
        let (mut fc, mut fd) =
            if budget.get() >= 2 { (damage(c)?, damage(d)?) } else { (f64::MIN, f64::MIN) };
        while left() {
            if fc > fd {
                (b, d, fd) = (d, c, fc);
                c = b - g * (b - a);
                fc = damage(c)?;
            } else {
                (a, c, fc) = (c, d, fd);
                d = a + g * (b - a);
                fd = damage(d)?;
            }
        }
        let (best_tau, _) =
            [(c, fc), (d, fd)].into_iter().fold((best_tau, best), |b, x| if x.1 > b.1 { x } else { b });
        Ok(make(honest, best_tau))
    }
}

/// Label flipping, applied by Byzantine agents to their training data: class y becomes
/// classes − 1 − y.
pub fn flip_label(y: usize, classes: usize) -> usize {
    classes - 1 - y.min(classes - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rule;

    fn honest() -> Vec<Vec<f64>> {
        vec![vec![1.0, 2.0], vec![3.0, 2.0], vec![2.0, 2.0]]
    }

    fn run(kind: &str, params: &[&str]) -> Vec<f64> {
        let p = Params::parse(params).unwrap();
        let a = Attack::from_params(kind, &p, 5).unwrap();
        p.finish().unwrap();
        a.vector(&honest(), 1, 5).unwrap()
    }

    #[test]
    fn simple_attacks_by_hand() {
        // mean = (2, 2); sample sd = (1, 0).
        assert_eq!(run("signflip", &[]), vec![-2.0, -2.0]);
        assert_eq!(run("ipm", &[]), vec![-4.0, -4.0]);
        assert_eq!(run("ipm", &["tau=0.5"]), vec![-1.0, -1.0]);
        assert_eq!(run("alie", &[]), vec![3.5, 2.0]);
        assert_eq!(run("alie", &["tau=-2"]), vec![0.0, 2.0]);
        assert_eq!(run("mimic", &["target=1"]), vec![3.0, 2.0]);
        assert_eq!(run("infinity", &[]), vec![f64::MAX, f64::MAX]);
        let g = run("gaussian", &["mu=10", "sigma=0.001"]);
        assert!(g.iter().all(|x| (x - 10.0).abs() < 0.01), "{g:?}");
        assert_eq!(g, run("gaussian", &["mu=10", "sigma=0.001"]), "seeded");
    }

    #[test]
    fn label_flipping() {
        assert_eq!(flip_label(0, 10), 9);
        assert_eq!(flip_label(9, 10), 0);
        assert_eq!(flip_label(4, 10), 5);
    }

    #[test]
    fn bad_attack_requests_are_refused() {
        let p = Params::parse(&["target=9"]).unwrap();
        let a = Attack::from_params("mimic", &p, 0).unwrap();
        assert!(a.vector(&honest(), 1, 0).unwrap_err().to_string().contains("only 3 honest"));
        assert!(
            Attack::from_params("labelflip", &Params::default(), 0)
                .unwrap_err()
                .to_string()
                .contains("federated")
        );
        assert!(
            Attack::from_params("opt-ipm", &Params::default(), 0).unwrap_err().to_string().contains("rule")
        );
        assert!(matches!(Attack::from_params("nope", &Params::default(), 0), Err(Error::Unknown { .. })));
    }

    #[test]
    fn optimised_ipm_beats_the_default_tau_against_its_target() {
        // Against the plain average, damage grows with τ without bound: the search must push
        // τ far above its start.
        let honest: Vec<Vec<f64>> = (0..7).map(|i| vec![1.0 + i as f64 * 0.1, 1.0]).collect();
        let p = Params::parse(&["rule=average", "evaluations=10"]).unwrap();
        let a = Attack::from_params("opt-ipm", &p, 0).unwrap();
        let v = a.vector(&honest, 3, 0).unwrap();
        assert!(v[1] < -100.0, "{v:?}");
        // Against the median, the found vector moves the median at least as far as τ = 2 does.
        let p = Params::parse(&["rule=median"]).unwrap();
        let a = Attack::from_params("opt-alie", &p, 0).unwrap();
        let found = a.vector(&honest, 3, 0).unwrap();
        let damage = |bad: Vec<f64>| {
            let mut all = honest.clone();
            all.extend(std::iter::repeat_n(bad, 3));
            dist2(&crate::aggregate(&Rule::Median, &all, 3).unwrap().vector, &mean(&honest))
        };
        assert!(damage(found) >= damage(alie(&honest, 1.5)));
    }
}
