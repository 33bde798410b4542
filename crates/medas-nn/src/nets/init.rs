//! Seeded weight initialisation that depends on nothing but the seed: Burn draws initial
//! weights from a process-wide generator that anything else (another training run, a test)
//! may draw from in between, so a seed alone would not fix the weights. Convolution,
//! transposed convolution and linear weights and biases get uniform(-b, b), b = 1/sqrt(fan_in)
//! (PyTorch's and Burn's default for these layers), from SplitMix64 streams; normalisation
//! scales and shifts keep their constants (1 and 0). Parameter ids are drawn from the seed
//! as well.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

/// `module` with every convolution and linear parameter drawn again from `seed`.
pub fn initialize<M: Module>(module: M, seed: u64) -> M {
    module.map(&mut SeededInit { seed, path: Vec::new(), count: 0, fan_in: 1 })
}

struct SeededInit {
    seed: u64,
    /// (name, container type) of the modules entered so far.
    path: Vec<(String, String)>,
    /// Parameters drawn so far: each one gets its own stream.
    count: u64,
    /// The fan-in of the last weight, for the bias that follows it.
    fan_in: usize,
}

impl SeededInit {
    /// The layer type holding the current parameter ("Conv2d", "Linear", ...) and its field.
    fn location(&self) -> (&str, &str) {
        let field = self.path.last().map_or("", |(name, _)| name.as_str());
        let layer = self.path.last().map_or("", |(_, container)| container.strip_prefix("Struct:").unwrap_or(container));
        (layer, field)
    }
}

/// SplitMix64 (Steele et al. 2014): one 64-bit state, the same stream on every machine.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ModuleMapper for SeededInit {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (layer, field) = self.location();
        let is_conv = layer.starts_with("Conv") || layer.starts_with("FastConv");
        let dims = param.shape().dims::<D>();
        let fan_in = match (layer, field) {
            (_, "weight") if is_conv && D >= 3 => Some(dims[1] * dims[2..].iter().product::<usize>()),
            ("Linear", "weight") if D == 2 => Some(dims[0]), // Burn stores Linear weights (in, out)
            (_, "bias") if is_conv || layer == "Linear" => Some(self.fan_in),
            _ => None, // normalisation constants and anything we do not know keep their values
        };
        self.count += 1;
        let mut state = self.seed ^ self.count.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        // Parameter ids from the seed too: an optimizer state saved by one run then finds its
        // parameters in a network built again (resume).
        let id = ParamId::from(splitmix64(&mut state));
        let (_, tensor, mapper) = param.consume();
        let Some(fan_in) = fan_in else { return Param::from_mapped_value(id, tensor, mapper) };
        self.fan_in = fan_in;
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let values: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|_| ((splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
            .map(|v| v as f32)
            .collect();
        let drawn = Tensor::from_data(TensorData::new(values, dims), &tensor.device());
        // A tensor made from data is a leaf without gradient tracking; keep the parameter's.
        let drawn = if tensor.is_require_grad() { drawn.require_grad() } else { drawn };
        Param::from_mapped_value(id, drawn, mapper)
    }
}
