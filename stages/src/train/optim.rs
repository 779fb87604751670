//! AdamW with decoupled weight decay on matrices only, global-norm gradient
//! clipping, and a linear-warmup cosine schedule. Written out (rather than
//! tch's optimizer) so its moments can be checkpointed and resumed exactly.

use tch::Tensor;

use super::TrainParams;

/// Optimizer state: the first and second moments of every parameter.
pub struct AdamW {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates applied so far.
    pub step: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// Fresh state for named parameters.
    pub fn new(params: Vec<(String, Tensor)>, p: &TrainParams) -> Self {
        let zeros = |t: &Tensor| t.zeros_like().detach();
        let m = params.iter().map(|(_, t)| zeros(t)).collect();
        let v = params.iter().map(|(_, t)| zeros(t)).collect();
        Self {
            params,
            m,
            v,
            step: 0,
            beta1: p.beta1,
            beta2: p.beta2,
            eps: 1e-8,
            weight_decay: p.weight_decay,
        }
    }

    /// Scales gradients so their global L2 norm is at most `max`; returns the norm before.
    pub fn clip_grad_norm(&self, max: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        let norm = tch::no_grad(|| {
            let squares: Vec<Tensor> = grads
                .iter()
                .map(|g| g.square().sum(tch::Kind::Float))
                .collect();
            Tensor::stack(&squares, 0)
                .sum(tch::Kind::Float)
                .sqrt()
                .double_value(&[])
        });
        if max > 0.0 && norm > max {
            let scale = max / (norm + 1e-6);
            tch::no_grad(|| {
                grads
                    .iter()
                    .for_each(|g| _ = g.shallow_clone().g_mul_scalar_(scale))
            });
        }
        norm
    }

    /// One update at learning rate `lr`, then clears the gradients.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let correction1 = 1.0 - b1.powi(t);
        let correction2 = 1.0 - b2.powi(t);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                // Decay matrices (weights, embeddings), not biases or LayerNorm gains.
                if p.dim() >= 2 && self.weight_decay > 0.0 {
                    _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                }
                _ = self.m[i].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                _ = self.v[i]
                    .g_mul_scalar_(b2)
                    .g_add_(&(g.square() * (1.0 - b2)));
                let denom = (&self.v[i] / correction2).sqrt() + self.eps;
                _ = p.g_sub_(&((&self.m[i] / &denom) * (lr / correction1)));
            }
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    _ = g.zero_();
                }
            }
        });
    }

    /// The moments by name (`m.NAME`, `v.NAME`), for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }
}

/// The learning rate at a step: linear warmup to `lr`, then cosine decay to `lr · min_lr_ratio`.
pub fn learning_rate(p: &TrainParams, step: u64) -> f64 {
    let (warmup, total) = (p.warmup_steps as f64, p.steps.max(1) as f64);
    let s = step as f64;
    if s < warmup {
        return p.lr * (s + 1.0) / warmup;
    }
    let progress = ((s - warmup) / (total - warmup).max(1.0)).clamp(0.0, 1.0);
    let min = p.lr * p.min_lr_ratio;
    min + 0.5 * (p.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays_to_the_floor() {
        let p = TrainParams {
            lr: 1e-3,
            warmup_steps: 10,
            steps: 110,
            min_lr_ratio: 0.1,
            ..TrainParams::default()
        };
        assert!((learning_rate(&p, 0) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&p, 9) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&p, 10) - 1e-3).abs() < 1e-12);
        assert!(
            (learning_rate(&p, 60) - 5.5e-4).abs() < 1e-9,
            "half way down the cosine"
        );
        assert!((learning_rate(&p, 110) - 1e-4).abs() < 1e-12);
        let steps: Vec<f64> = (10..=110).map(|s| learning_rate(&p, s)).collect();
        assert!(steps.windows(2).all(|w| w[1] <= w[0]));
    }
}
