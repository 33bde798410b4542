//! The optimizers of the registration tools: regular-step gradient descent (ITK's
//! RegularStepGradientDescentOptimizerv4) with parameter scales from physical shifts (ITK's
//! RegistrationParameterScalesFromPhysicalShift, corner sampling), and limited-memory BFGS with
//! a backtracking line search and LBFGSB's stopping rules (unbounded).

use crate::tools::reg_transform::{Point, Transform};

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

/// Minimises by steps of decreasing length along the scaled negative gradient: the step length
/// starts at the learning rate and is multiplied by the relaxation whenever the direction
/// turns by more than 90°. `evaluate` gives the value and gradient at the parameters;
/// `each` is called after every iteration (for progress and cancellation) and may stop it.
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
        // The tolerance applies to the gradient as the metric gives it (what SimpleITK's
        // runs show: scaled rotation gradients are tiny long before convergence).
        let raw = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
        if !magnitude.is_finite() || raw < settings.gradient_tolerance {
            return Ok(Convergence { iterations: iteration, value, reason: "gradient magnitude below tolerance" });
        }
        if let Some(previous) = &previous
            && previous.iter().zip(&scaled).map(|(a, b)| a * b).sum::<f64>() < 0.0
        {
            step *= settings.relaxation;
        }
        if step < settings.min_step {
            return Ok(Convergence { iterations: iteration, value, reason: "step below minimum step" });
        }
        // The update in scaled space, mapped back: scaled gradient g/s moves parameter k by
        // step * (g_k / s_k) / |g/s|, a shift of about `step` mm.
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
/// Armijo's sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;
/// Halvings of the step before the line search gives up.
const HALVINGS: usize = 20;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The quasi-Newton direction `-H g` from the stored pairs (two-loop recursion).
fn direction(g: &[f64], pairs: &std::collections::VecDeque<(Vec<f64>, Vec<f64>)>) -> Vec<f64> {
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

/// Minimises with limited-memory BFGS over the parameters divided by `sqrt(scales)` (so a
/// step means about the same physical shift for every parameter); the first step moves the
/// scaled parameters by 1 (1 mm for B-spline coefficients). `evaluate` and `each` as in
/// [`descend`].
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
    let mut q: Vec<f64> = parameters.iter().zip(&roots).map(|(p, r)| p * r).collect();
    let (mut value, mut gradient) = scaled_eval(&q)?;
    let mut pairs = std::collections::VecDeque::new();
    let mut reason = "maximum number of iterations";
    let mut iterations = settings.iterations;
    for iteration in 0..settings.iterations {
        if !value.is_finite() || gradient.iter().all(|g| g.abs() < settings.gradient_tolerance) {
            (reason, iterations) = ("gradient magnitude below tolerance", iteration);
            break;
        }
        let mut d = direction(&gradient, &pairs);
        if dot(&d, &gradient) >= 0.0 {
            pairs.clear();
            d = gradient.iter().map(|g| -g).collect();
        }
        let slope = dot(&d, &gradient);
        let mut step = if pairs.is_empty() { 1.0 / dot(&d, &d).sqrt() } else { 1.0 };
        let mut accepted = None;
        for _ in 0..HALVINGS {
            let trial: Vec<f64> = q.iter().zip(&d).map(|(q, d)| q + step * d).collect();
            let (v, g) = scaled_eval(&trial)?;
            if v.is_finite() && v <= value + ARMIJO * step * slope {
                accepted = Some((trial, v, g));
                break;
            }
            step *= 0.5;
        }
        let Some((trial, v, g)) = accepted else {
            if !pairs.is_empty() {
                pairs.clear(); // retry along the gradient before giving up
                continue;
            }
            (reason, iterations) = ("line search found no decrease", iteration);
            break;
        };
        let s: Vec<f64> = trial.iter().zip(&q).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g.iter().zip(&gradient).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-10 * dot(&y, &y) {
            if pairs.len() == settings.corrections {
                pairs.pop_front();
            }
            pairs.push_back((s, y));
        }
        let reduction = (value - v) / value.abs().max(v.abs()).max(1.0);
        (q, value, gradient) = (trial, v, g);
        each(iteration + 1)?;
        if reduction <= RELATIVE_REDUCTION {
            (reason, iterations) = ("relative reduction below tolerance", iteration + 1);
            break;
        }
    }
    parameters.copy_from_slice(&unscale(&q));
    Ok(Convergence { iterations, value, reason })
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
    fn rotation_scales_are_squared_lever_arms() {
        let t = Transform::identity(Kind::Rigid, [0.0; 3]);
        let scales = physical_shift_scales(&t, &[[100.0, 0.0, 0.0], [0.0, 50.0, 0.0]]);
        // About x: the y point moves 50; about y and z the x point moves 100.
        assert_eq!(scales, vec![2500.0, 10000.0, 10000.0, 1.0, 1.0, 1.0]);
    }
}
