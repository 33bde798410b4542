//! The line search of `reg_optimizer::lbfgs`: Moré and Thuente's (1994) search for a step that
//! satisfies the strong Wolfe conditions, as L-BFGS-B 3.0 (and so SimpleITK's
//! `SetOptimizerAsLBFGSB`) runs it: sufficient decrease `f(a) <= f(0) + ftol a f'(0)` and
//! curvature `|f'(a)| <= gtol |f'(0)|`, with ftol 1e-3, gtol 0.9, xtol 0.1. The search keeps an
//! interval of uncertainty; each new trial step comes from a cubic or quadratic interpolation of
//! the values and slopes at the interval's ends and the last trial, safeguarded so that the
//! interval shrinks. Written as a state machine: the caller evaluates the trial steps.

/// Sufficient-decrease constant (L-BFGS-B's `ftol`).
const FTOL: f64 = 1e-3;
/// Curvature constant (`gtol`).
const GTOL: f64 = 0.9;
/// Relative width of the interval below which the search gives up (`xtol`).
const XTOL: f64 = 0.1;
/// Extrapolation bounds while no minimiser is bracketed: the next step lies in
/// `[step + 1.1 (step - best), step + 4 (step - best)]`.
const EXTRAPOLATE: (f64, f64) = (1.1, 4.0);

/// A step with the function's value and slope (derivative along the search direction) there.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Probe {
    step: f64,
    value: f64,
    slope: f64,
}

/// What to do after a trial step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Evaluate this step next.
    Try(f64),
    /// Accept the step just evaluated: the strong Wolfe conditions hold, or (a warning, as
    /// L-BFGS-B accepts it too) the interval or the step bounds leave no room for progress.
    Accept(&'static str),
}

/// The state of one search along a descent direction.
#[derive(Debug, Clone)]
pub struct LineSearch {
    start: Probe,
    /// `ftol f'(0)`: the slope of the sufficient-decrease line.
    decrease: f64,
    /// The end of the interval with the least (modified) value so far, and the other end.
    best: Probe,
    other: Probe,
    bracketed: bool,
    /// Stage one: no step with sufficient decrease and non-negative slope seen yet; the search
    /// then works on `f(a) - ftol a f'(0)` so that it does not stop at a point without decrease.
    stage_one: bool,
    width: f64,
    previous_width: f64,
    /// Where the next step may lie.
    low: f64,
    high: f64,
    limits: (f64, f64),
}

impl LineSearch {
    /// A search from value `value` and slope `slope` (< 0) at step 0, whose first trial is
    /// `first`; steps are kept in `limits`.
    pub fn new(value: f64, slope: f64, first: f64, limits: (f64, f64)) -> LineSearch {
        let start = Probe { step: 0.0, value, slope };
        LineSearch {
            start,
            decrease: FTOL * slope,
            best: start,
            other: start,
            bracketed: false,
            stage_one: true,
            width: limits.1 - limits.0,
            previous_width: 2.0 * (limits.1 - limits.0),
            low: 0.0,
            high: first + EXTRAPOLATE.1 * first,
            limits,
        }
    }

    /// Takes the value and slope at the trial `step` and says what to do next.
    pub fn next(&mut self, step: f64, value: f64, slope: f64) -> Next {
        let trial = Probe { step, value, slope };
        let line = self.start.value + step * self.decrease;
        if self.stage_one && value <= line && slope >= 0.0 {
            self.stage_one = false;
        }
        if let Some(reason) = self.finished(&trial, line) {
            return Next::Accept(reason);
        }
        if self.stage_one && value <= self.best.value && value > line {
            // Interpolate the modified function, which has a minimiser where f has sufficient decrease.
            let shift = |p: Probe| Probe { step: p.step, value: p.value - p.step * self.decrease, slope: p.slope - self.decrease };
            let unshift = |p: Probe| Probe { step: p.step, value: p.value + p.step * self.decrease, slope: p.slope + self.decrease };
            let (mut best, mut other) = (shift(self.best), shift(self.other));
            let next = update_interval(&mut best, &mut other, shift(trial), &mut self.bracketed, (self.low, self.high));
            (self.best, self.other) = (unshift(best), unshift(other));
            self.propose(next)
        } else {
            let next = update_interval(&mut self.best, &mut self.other, trial, &mut self.bracketed, (self.low, self.high));
            self.propose(next)
        }
    }

    /// Why the search ends at `trial` (whose sufficient-decrease bound is `line`), if it does.
    fn finished(&self, trial: &Probe, line: f64) -> Option<&'static str> {
        let (low, high) = self.limits;
        if trial.value <= line && trial.slope.abs() <= GTOL * -self.start.slope {
            return Some("strong Wolfe conditions met");
        }
        if self.bracketed && (trial.step <= self.low || trial.step >= self.high) {
            return Some("rounding errors prevent progress");
        }
        if self.bracketed && self.high - self.low <= XTOL * self.high {
            return Some("interval of uncertainty below xtol");
        }
        if trial.step == high && trial.value <= line && trial.slope <= self.decrease {
            return Some("step at the upper limit");
        }
        if trial.step == low && (trial.value > line || trial.slope >= self.decrease) {
            return Some("step at the lower limit");
        }
        None
    }

    /// The next trial from the interpolated `step`: bisection when the bracket shrinks too
    /// slowly, then the bounds of where it may lie.
    fn propose(&mut self, mut step: f64) -> Next {
        let (best, other) = (self.best.step, self.other.step);
        if self.bracketed {
            if (other - best).abs() >= 0.66 * self.previous_width {
                step = best + 0.5 * (other - best);
            }
            self.previous_width = self.width;
            self.width = (other - best).abs();
            (self.low, self.high) = (best.min(other), best.max(other));
        } else {
            self.low = step + EXTRAPOLATE.0 * (step - best);
            self.high = step + EXTRAPOLATE.1 * (step - best);
        }
        step = step.clamp(self.limits.0, self.limits.1);
        // When no better step can be found, fall back to the best one so far.
        if self.bracketed && (step <= self.low || step >= self.high || self.high - self.low <= XTOL * self.high) {
            step = self.best.step;
        }
        Next::Try(step)
    }
}

/// The minimiser of the cubic through `(a, fa, da)` and `(b, fb, db)`, when it exists; `real`
/// clamps a negative discriminant to 0 (the cubic then has no turning point: its flattest one).
fn cubic_minimiser(a: &Probe, b: &Probe, real: bool) -> f64 {
    let theta = 3.0 * (a.value - b.value) / (b.step - a.step) + a.slope + b.slope;
    let s = theta.abs().max(a.slope.abs()).max(b.slope.abs());
    let discriminant = (theta / s).powi(2) - (a.slope / s) * (b.slope / s);
    let mut gamma = s * if real { discriminant.max(0.0) } else { discriminant }.sqrt();
    if b.step < a.step {
        gamma = -gamma;
    }
    let p = (gamma - a.slope) + theta;
    let q = ((gamma - a.slope) + gamma) + b.slope;
    a.step + p / q * (b.step - a.step)
}

/// The minimiser of the quadratic through `a`'s value and slope and `b`'s value.
fn quadratic_from_values(a: &Probe, b: &Probe) -> f64 {
    let span = b.step - a.step;
    a.step + a.slope / ((a.value - b.value) / span + a.slope) / 2.0 * span
}

/// The minimiser of the quadratic through the slopes at `a` and `b` (the secant step).
fn secant(a: &Probe, b: &Probe) -> f64 {
    b.step + b.slope / (b.slope - a.slope) * (a.step - b.step)
}

/// Moré and Thuente's safeguarded step (their four cases, by how the trial compares with the
/// best point) and the new interval: `best` and `other` are updated from `trial`, and the next
/// step is returned, within `bounds` while nothing is bracketed.
fn update_interval(best: &mut Probe, other: &mut Probe, trial: Probe, bracketed: &mut bool, bounds: (f64, f64)) -> f64 {
    let opposite_slopes = trial.slope * best.slope.signum() < 0.0;
    let (x, t) = (*best, trial);
    let next = if t.value > x.value {
        // Higher value: a minimiser lies between; take the cubic step, or move towards the
        // quadratic one when the cubic lands far from the best point.
        let (cubic, quadratic) = (cubic_minimiser(&x, &t, false), quadratic_from_values(&x, &t));
        *bracketed = true;
        if (cubic - x.step).abs() < (quadratic - x.step).abs() { cubic } else { cubic + (quadratic - cubic) / 2.0 }
    } else if opposite_slopes {
        // Lower value, slope turned: bracketed; the step farther from the trial.
        let (cubic, secant) = (cubic_minimiser(&t, &x, false), secant(&x, &t));
        *bracketed = true;
        if (cubic - t.step).abs() > (secant - t.step).abs() { cubic } else { secant }
    } else if t.slope.abs() < x.slope.abs() {
        // Lower value, same sign, flatter: the cubic step if it lies beyond the trial, else a bound.
        let cubic = flatter_cubic_step(&x, &t, bounds);
        let secant = secant(&x, &t);
        if *bracketed {
            let step = if (cubic - t.step).abs() < (secant - t.step).abs() { cubic } else { secant };
            let limit = t.step + 0.66 * (other.step - t.step);
            if t.step > x.step { step.min(limit) } else { step.max(limit) }
        } else {
            let step = if (cubic - t.step).abs() > (secant - t.step).abs() { cubic } else { secant };
            step.clamp(bounds.0, bounds.1)
        }
    } else if *bracketed {
        // Lower value, same sign, steeper: the cubic through the trial and the other end.
        cubic_minimiser(&t, other, false)
    } else if t.step > x.step {
        bounds.1
    } else {
        bounds.0
    };
    if t.value > x.value {
        *other = t;
    } else {
        if opposite_slopes {
            *other = x;
        }
        *best = t;
    }
    next
}

/// Case three's cubic step: the cubic's minimiser when it lies beyond the trial (seen from the
/// best point), else the bound on that side.
fn flatter_cubic_step(x: &Probe, t: &Probe, bounds: (f64, f64)) -> f64 {
    let theta = 3.0 * (x.value - t.value) / (t.step - x.step) + x.slope + t.slope;
    let s = theta.abs().max(x.slope.abs()).max(t.slope.abs());
    let mut gamma = s * ((theta / s).powi(2) - (x.slope / s) * (t.slope / s)).max(0.0).sqrt();
    if t.step > x.step {
        gamma = -gamma;
    }
    let p = (gamma - t.slope) + theta;
    let q = (gamma + (x.slope - t.slope)) + gamma;
    let r = p / q;
    if r < 0.0 && gamma != 0.0 {
        t.step + r * (x.step - t.step)
    } else if t.step > x.step {
        bounds.1
    } else {
        bounds.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search on `f` (value and derivative) from step `first`: the accepted step and the
    /// number of evaluations.
    fn search(f: impl Fn(f64) -> (f64, f64), first: f64) -> (f64, usize) {
        let (v0, d0) = f(0.0);
        let mut search = LineSearch::new(v0, d0, first, (0.0, 1e10));
        let mut step = first;
        for n in 1..=30 {
            let (v, d) = f(step);
            match search.next(step, v, d) {
                Next::Accept(reason) => {
                    assert_eq!(reason, "strong Wolfe conditions met");
                    return (step, n);
                }
                Next::Try(next) => step = next,
            }
        }
        panic!("no step accepted in 30 evaluations");
    }

    fn assert_wolfe(f: impl Fn(f64) -> (f64, f64), step: f64) {
        let ((v0, d0), (v, d)) = (f(0.0), f(step));
        assert!(v <= v0 + FTOL * step * d0, "sufficient decrease at {step}");
        assert!(d.abs() <= GTOL * d0.abs(), "curvature at {step}: slope {d} vs {d0}");
    }

    #[test]
    fn a_first_step_far_too_short_is_extrapolated() {
        // Moré and Thuente's first test function: -a / (a^2 + 2), minimum at sqrt(2).
        let f = |a: f64| (-a / (a * a + 2.0), (a * a - 2.0) / (a * a + 2.0).powi(2));
        let (step, evaluations) = search(f, 1e-3);
        assert_wolfe(f, step);
        assert!(evaluations <= 8, "{evaluations} evaluations");
    }

    #[test]
    fn a_first_step_far_too_long_is_bracketed_and_interpolated() {
        let f = |a: f64| ((a - 1.0).powi(4) - 4.0 * a, 4.0 * (a - 1.0).powi(3) - 4.0);
        let (step, evaluations) = search(f, 100.0);
        assert_wolfe(f, step);
        assert!(evaluations <= 12, "{evaluations} evaluations");
    }

    #[test]
    fn a_quadratic_is_solved_by_interpolation() {
        let f = |a: f64| ((a - 3.0).powi(2), 2.0 * (a - 3.0));
        let (step, _) = search(f, 1.0);
        assert_wolfe(f, step);
    }
}
