//! The optimizers of the registration tools: regular-step gradient descent (ITK's
//! RegularStepGradientDescentOptimizerv4) with parameter scales from physical shifts (ITK's
//! RegistrationParameterScalesFromPhysicalShift, corner sampling), and limited-memory BFGS with
//! L-BFGS-B's Moré–Thuente line search and stopping rules (unbounded).

use crate::tools::reg_line_search::{LineSearch, Next};
use crate::tools::reg_transform::{Point, Transform};
use std::collections::VecDeque;

/// Settings of [`descend`], named as in SimpleITK's `SetOptimizerAsRegularStepGradientDescent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSettings {
    /// First step length, in mm of physical shift.
    pub learning_rate: f64,
    /// Stop when the step length falls below this.
    pub min_step: f64,
    pub iterations: usize,
    /// Step length factor applied when the gradient turns back (0 to 1).
    pub relaxation: f64,
    /// Stop when the (unscaled) gradient's length falls below this.
    pub gradient_tolerance: f64,
}

/// How one level's descent ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Convergence {
    pub iterations: usize,
    pub value: f64,
    pub reason: &'static str,
}

/// Scale of each parameter: the squared largest shift (mm) a unit change of it moves any of
/// `points` (the fixed image's corners), 1 where it moves none; steps are then in mm.
pub fn physical_shift_scales(transform: &Transform, points: &[Point]) -> Vec<f64> {
    let n = transform.parameters.len();
    let derivatives = transform.derivatives();
    let mut scales = vec![0.0f64; n];
    for x in points {
        let mut shift = vec![0.0; n];
        for axis in 0..3 {
            let mut row = vec![0.0; n];
            let unit = [0, 1, 2].map(|a| if a == axis { 1.0 } else { 0.0 });
            derivatives.project(x, &unit, 1.0, &mut row);
            shift.iter_mut().zip(&row).for_each(|(s, r)| *s += r * r);
        }
        scales.iter_mut().zip(&shift).for_each(|(s, v)| *s = s.max(*v));
    }
    scales.iter().map(|&s| if s > 1e-12 { s } else { 1.0 }).collect()
}

/// Minimises by steps of decreasing length along the scaled negative gradient `g / s`, with
/// the stopping rules of ITK's RegularStepGradientDescentOptimizerv4: the step length starts at
/// the learning rate and is multiplied by the relaxation whenever the direction turns back;
/// stop when it falls below the minimum step, or when the gradient's length falls below the
/// gradient tolerance. ITK tests the turn on its stored previous update, which it divides by
/// the scales once more before the dot product: the sign of `sum g_k g'_k / s_k^3` (for rigid
/// and affine transforms mostly the translations' turn). ITK measures the scaled gradient
/// against the tolerance; here the gradient as the metric gives it is (with the scaled one,
/// our NCC and Mattes runs stop on the tolerance long before SimpleITK's do: the two metrics'
/// gradients are not scaled alike). `evaluate` gives the value and gradient at the
/// parameters; `each` is called after every iteration (for progress and cancellation) and may
/// stop it.
pub fn descend<E>(
    parameters: &mut [f64],
    scales: &[f64],
    settings: &StepSettings,
    mut evaluate: impl FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    mut each: impl FnMut(usize) -> Result<(), E>,
) -> Result<Convergence, E> {
    let mut step = settings.learning_rate;
    let mut previous: Option<Vec<f64>> = None;
    let mut value = f64::NAN;
    for iteration in 0..settings.iterations {
        let (current, gradient) = evaluate(parameters)?;
        value = current;
        let scaled: Vec<f64> = gradient.iter().zip(scales).map(|(g, s)| g / s).collect();
        let magnitude = scaled.iter().map(|g| g * g).sum::<f64>().sqrt();
        let raw = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !magnitude.is_finite() || raw < settings.gradient_tolerance {
            return Ok(Convergence { iterations: iteration, value, reason: "gradient magnitude below tolerance" });
        }
        if let Some(previous) = &previous
            && previous.iter().zip(&scaled).zip(scales).map(|((a, b), s)| a * b / s).sum::<f64>() < 0.0
        {
            step *= settings.relaxation;
        }
        if step < settings.min_step {
            return Ok(Convergence { iterations: iteration, value, reason: "step below minimum step" });
        }
        // Scaled gradient g/s moves parameter k by step * (g_k / s_k) / |g/s|, a shift of
        // about `step` mm.
        for (p, g) in parameters.iter_mut().zip(&scaled) {
            *p -= step * g / magnitude;
        }
        previous = Some(scaled);
        each(iteration + 1)?;
    }
    Ok(Convergence { iterations: settings.iterations, value, reason: "maximum number of iterations" })
}

/// Settings of [`lbfgs`], named as in SimpleITK's `SetOptimizerAsLBFGSB`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsSettings {
    pub iterations: usize,
    /// Stop when the largest scaled gradient component falls below this.
    pub gradient_tolerance: f64,
    /// Curvature pairs kept (`maximumNumberOfCorrections`).
    pub corrections: usize,
}

/// LBFGSB's default cost-function convergence factor times the machine epsilon: stop when the
/// value falls by less than this, relatively.
const RELATIVE_REDUCTION: f64 = 1e7 * f64::EPSILON;
/// Evaluations one line search may take before L-BFGS-B restarts along the gradient.
const SEARCH_EVALUATIONS: usize = 20;
/// L-BFGS-B's largest step for unbounded parameters.
const LARGEST_STEP: f64 = 1e10;
/// LBFGSB's default `maximumNumberOfFunctionEvaluations` in SimpleITK.
const MAX_EVALUATIONS: usize = 2000;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

type Pairs = VecDeque<(Vec<f64>, Vec<f64>)>;

/// The quasi-Newton direction `-H g` from the stored pairs (two-loop recursion; for unbounded
/// parameters the same as L-BFGS-B's compact form with `theta = y'y / s'y`).
fn direction(g: &[f64], pairs: &Pairs) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y) in pairs.iter().rev() {
        let alpha = dot(s, &q) / dot(s, y);
        q.iter_mut().zip(y).for_each(|(q, y)| *q -= alpha * y);
        alphas.push(alpha);
    }
    if let Some((s, y)) = pairs.back() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|q| *q *= gamma);
    }
    for ((s, y), alpha) in pairs.iter().zip(alphas.iter().rev()) {
        let beta = dot(y, &q) / dot(s, y);
        q.iter_mut().zip(s).for_each(|(q, s)| *q += (alpha - beta) * s);
    }
    q.iter_mut().for_each(|q| *q = -*q);
    q
}

/// A point of the scaled parameter space with its value and gradient.
struct Iterate {
    at: Vec<f64>,
    value: f64,
    gradient: Vec<f64>,
}

/// How a line search ended: the accepted point, or none within the evaluation limit.
enum Searched {
    Accepted(Iterate),
    Failed,
}

/// Searches along `d` from `from` (Moré–Thuente, strong Wolfe) starting with `first`; every
/// evaluated point is offered to `best`. Counts evaluations into `evaluations`.
fn search_line<E>(
    from: &Iterate,
    d: &[f64],
    first: f64,
    evaluate: &mut impl FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    best: &mut Option<Iterate>,
    evaluations: &mut usize,
) -> Result<Searched, E> {
    let mut search = LineSearch::new(from.value, dot(&from.gradient, d), first, (0.0, LARGEST_STEP));
    let mut step = first;
    for _ in 0..SEARCH_EVALUATIONS {
        let at: Vec<f64> = from.at.iter().zip(d).map(|(q, d)| q + step * d).collect();
        let (value, gradient) = evaluate(&at)?;
        *evaluations += 1;
        if !value.is_finite() {
            step *= 0.5; // outside where the metric is defined: back off towards the start
            continue;
        }
        let slope = dot(&gradient, d);
        let point = Iterate { at, value, gradient };
        if best.as_ref().is_none_or(|b| point.value < b.value) {
            *best = Some(Iterate { at: point.at.clone(), value, gradient: point.gradient.clone() });
        }
        match search.next(step, value, slope) {
            Next::Accept(_) => return Ok(Searched::Accepted(point)),
            Next::Try(next) => step = next,
        }
    }
    Ok(Searched::Failed)
}

/// Minimises with limited-memory BFGS over the parameters divided by `sqrt(scales)` (so a
/// step means about the same physical shift for every parameter), as L-BFGS-B 3.0 does without
/// bounds (SimpleITK's `SetOptimizerAsLBFGSB`): the first step moves the scaled parameters by 1
/// (1 mm for B-spline coefficients), later ones start at the quasi-Newton step; each step is
/// found by a Moré–Thuente line search (strong Wolfe conditions); a search that fails within
/// 20 evaluations restarts from the gradient with the memory cleared, or ends the run when the
/// memory is already empty. Stops when the largest gradient component falls below the
/// tolerance, the value falls by less than 1e7 machine epsilons relatively, or after the
/// iterations (or 2000 evaluations); returns the best point evaluated, as vnl's LBFGSB does.
/// `evaluate` and `each` as in [`descend`].
pub fn lbfgs<E>(
    parameters: &mut [f64],
    scales: &[f64],
    settings: &LbfgsSettings,
    mut evaluate: impl FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    mut each: impl FnMut(usize) -> Result<(), E>,
) -> Result<Convergence, E> {
    let roots: Vec<f64> = scales.iter().map(|s| s.sqrt()).collect();
    let unscale = |q: &[f64]| -> Vec<f64> { q.iter().zip(&roots).map(|(q, r)| q / r).collect() };
    let mut scaled_eval = |q: &[f64]| -> Result<(f64, Vec<f64>), E> {
        let (value, gradient) = evaluate(&unscale(q))?;
        Ok((value, gradient.iter().zip(&roots).map(|(g, r)| g / r).collect()))
    };
    let at: Vec<f64> = parameters.iter().zip(&roots).map(|(p, r)| p * r).collect();
    let (value, gradient) = scaled_eval(&at)?;
    let mut current = Iterate { at, value, gradient };
    let mut best: Option<Iterate> = None;
    let mut evaluations = 1;
    let mut pairs = Pairs::new();
    let (mut reason, mut iterations) = ("maximum number of iterations", settings.iterations);
    let mut iteration = 0;
    while iteration < settings.iterations {
        if !current.value.is_finite() || current.gradient.iter().all(|g| g.abs() <= settings.gradient_tolerance) {
            (reason, iterations) = ("gradient magnitude below tolerance", iteration);
            break;
        }
        if evaluations >= MAX_EVALUATIONS {
            (reason, iterations) = ("maximum number of evaluations", iteration);
            break;
        }
        let mut d = direction(&current.gradient, &pairs);
        if dot(&d, &current.gradient) >= 0.0 {
            pairs.clear();
            d = current.gradient.iter().map(|g| -g).collect();
        }
        let first = if iteration == 0 { (1.0 / dot(&d, &d).sqrt()).min(LARGEST_STEP) } else { 1.0 };
        let Searched::Accepted(next) = search_line(&current, &d, first, &mut scaled_eval, &mut best, &mut evaluations)? else {
            if !pairs.is_empty() {
                pairs.clear(); // L-BFGS-B: refresh the memory and retry along the gradient
                continue;
            }
            (reason, iterations) = ("line search failed along the gradient", iteration);
            break;
        };
        let s: Vec<f64> = next.at.iter().zip(&current.at).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.gradient.iter().zip(&current.gradient).map(|(a, b)| a - b).collect();
        // L-BFGS-B skips a pair without enough curvature: s'y <= eps * (-g's).
        if dot(&s, &y) > f64::EPSILON * -dot(&current.gradient, &s) {
            if pairs.len() == settings.corrections {
                pairs.pop_front();
            }
            pairs.push_back((s, y));
        }
        let reduction = (current.value - next.value) / current.value.abs().max(next.value.abs()).max(1.0);
        current = next;
        iteration += 1;
        each(iteration)?;
        if reduction <= RELATIVE_REDUCTION {
            (reason, iterations) = ("relative reduction below tolerance", iteration);
            break;
        }
    }
    let end = best.filter(|b| b.value < current.value).unwrap_or(current);
    parameters.copy_from_slice(&unscale(&end.at));
    Ok(Convergence { iterations, value: end.value, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::reg_transform::Kind;

    #[test]
    fn descends_to_the_minimum_of_a_bowl() {
        let settings = StepSettings { learning_rate: 1.0, min_step: 1e-6, iterations: 500, relaxation: 0.5, gradient_tolerance: 1e-9 };
        let mut p = vec![3.0, -2.0];
        let bowl = |p: &[f64]| Ok::<_, ()>((p[0].powi(2) + 4.0 * p[1].powi(2), vec![2.0 * p[0], 8.0 * p[1]]));
        let result = descend(&mut p, &[1.0, 1.0], &settings, bowl, |_| Ok(())).unwrap();
        assert!(p.iter().all(|v| v.abs() < 1e-4), "{p:?} {result:?}");
        assert_eq!(result.reason, "step below minimum step");
    }

    #[test]
    fn lbfgs_finds_the_minimum_of_a_skewed_bowl() {
        let settings = LbfgsSettings { iterations: 100, gradient_tolerance: 1e-8, corrections: 5 };
        let mut p = vec![3.0, -2.0, 1.0];
        let bowl = |p: &[f64]| {
            let r = [p[0] + 0.5 * p[1] - 1.0, 3.0 * p[1], p[2] - 2.0];
            Ok::<_, ()>((r.iter().map(|v| v * v).sum(), vec![2.0 * r[0], r[0] + 18.0 * r[1], 2.0 * r[2]]))
        };
        let result = lbfgs(&mut p, &[1.0, 4.0, 1.0], &settings, bowl, |_| Ok(())).unwrap();
        assert!((p[0] - 1.0).abs() < 1e-4 && p[1].abs() < 1e-4 && (p[2] - 2.0).abs() < 1e-4, "{p:?} {result:?}");
    }

    #[test]
    fn the_step_shrinks_on_itks_turn_test_weighted_by_the_cubed_scales() {
        // Scaled, the second gradient turns back ((1, 1) then (-1.5, 1)), but ITK's test
        // weighs the first component by 1 / 100^3: no turn, no relaxation, the descent goes on.
        let gradients = [[100.0, 1.0], [-150.0, 1.0], [0.0, 0.0]];
        let mut calls = 0;
        let scripted = |_: &[f64]| {
            calls += 1;
            Ok::<_, ()>((1.0, gradients[calls - 1].to_vec()))
        };
        let settings = StepSettings { learning_rate: 1.0, min_step: 0.6, iterations: 10, relaxation: 0.5, gradient_tolerance: 1e-9 };
        let result = descend(&mut [0.0, 0.0], &[100.0, 1.0], &settings, scripted, |_| Ok(())).unwrap();
        assert_eq!((result.iterations, result.reason), (2, "gradient magnitude below tolerance"));
    }

    #[test]
    fn lbfgs_follows_the_rosenbrock_valley_with_few_evaluations() {
        let settings = LbfgsSettings { iterations: 200, gradient_tolerance: 1e-8, corrections: 5 };
        let mut p = vec![-1.2, 1.0, -1.2, 1.0];
        let mut evaluations = 0;
        let rosenbrock = |p: &[f64]| {
            evaluations += 1;
            let (mut value, mut gradient) = (0.0, vec![0.0; p.len()]);
            for i in (0..p.len()).step_by(2) {
                let (a, b) = (1.0 - p[i], 10.0 * (p[i + 1] - p[i] * p[i]));
                value += a * a + b * b;
                gradient[i] = -2.0 * a - 40.0 * p[i] * b;
                gradient[i + 1] = 20.0 * b;
            }
            Ok::<_, ()>((value, gradient))
        };
        let result = lbfgs(&mut p, &[1.0; 4], &settings, rosenbrock, |_| Ok(())).unwrap();
        assert!(p.iter().all(|v| (v - 1.0).abs() < 1e-3), "{p:?} {result:?}");
        assert!(result.iterations < 60 && evaluations < 120, "{result:?} after {evaluations} evaluations");
    }

    #[test]
    fn rotation_scales_are_squared_lever_arms() {
        let t = Transform::identity(Kind::Rigid, [0.0; 3]);
        let scales = physical_shift_scales(&t, &[[100.0, 0.0, 0.0], [0.0, 50.0, 0.0]]);
        // About x: the y point moves 50; about y and z the x point moves 100.
        assert_eq!(scales, vec![2500.0, 10000.0, 10000.0, 1.0, 1.0, 1.0]);
    }
}
