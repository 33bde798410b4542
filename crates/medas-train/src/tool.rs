//! The catalog tool `network.predict`: a stored model's label map (and class probabilities)
//! for one image, through [`crate::predict::Predictor`] (the same tensors, normalisation and
//! sliding window as `medas predict`).

use std::sync::Arc;

use medas_nn::{ComputeDevice, ModelStore};
use medas_tools::{Category, Context, Data, Inputs, Outputs, ParamSpec, Params, PortSpec, PortType, Tool, ToolEntry, ToolError, ToolSpec, take_image};

use crate::predict::{PredictError, PredictOptions, Predictor};

pub struct Predict(ToolSpec);

impl Predict {
    fn new() -> Predict {
        let mut spec = ToolSpec::new(
            "network.predict",
            Category::Network,
            "Predict (segmentation model)",
            "Segments an image with a model of the model store (`medas model list`; trained with \
             `medas train` or imported): the image's components (or 4th axis) are the network's \
             input channels, normalised as the model was trained (its metadata), run window by \
             window (nnU-Net's sliding window: windows of the training patch size, Gaussian \
             blending where they overlap, optionally averaged over every mirror image), softmax \
             over the classes. The label map (uint8, the class of highest probability) and the \
             probabilities (float32, one component per class) have the input's geometry. Not cached: \
             a model may be replaced under the same name.",
        )
        .param(ParamSpec::string("model", "Name of the model in the model store."))
        .param(ParamSpec::float("overlap", "Fraction of a window shared with its neighbour.").default(0.5).range(0.0, 0.95))
        .param(ParamSpec::bool("tta", "Test-time augmentation: average the predictions of every mirror image.").default(false))
        .input(PortSpec::new("image", PortType::Image, "The image; its components are the model's input channels."))
        .output(PortSpec::new("labels", PortType::LabelImage, "The class of every voxel, uint8."))
        .output(PortSpec::new("probabilities", PortType::Image, "The class probabilities, float32, one component per class."));
        // The result depends on the stored model, which its name does not pin (a model can be
        // replaced): never served from the pipeline cache.
        spec.cacheable = false;
        Predict(spec)
    }
}

impl Tool for Predict {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let failed = |message: String| ToolError::Failed { tool: id.clone(), message };
        let image = take_image(&mut inputs, id, "image")?;
        let name = params.text("model")?;
        let store = ModelStore::open_default();
        let device = ComputeDevice::Cpu.inference();
        let model = store.load(name, &device).map_err(|e| failed(format!("parameter \"model\": {e} (see `medas model list`)")))?;
        let options = PredictOptions { overlap: params.float("overlap")?, flips: params.bool("tta")?, ..PredictOptions::default() };
        let predictor = Predictor::new(name, model, &options, device).map_err(|e| failed(e.to_string()))?;
        let mut progress = |done: f64| {
            context.progress(done);
            !context.is_cancelled()
        };
        let prediction = predictor.predict("image", &[("image".to_string(), image)], &mut progress).map_err(|e| match e {
            PredictError::Infer(medas_nn::InferError::Cancelled { .. }) => ToolError::Cancelled { tool: id.clone() },
            other => failed(other.to_string()),
        })?;
        Ok(Outputs::from([("labels".to_string(), Data::Image(prediction.labels)), ("probabilities".to_string(), Data::Image(prediction.probabilities))]))
    }
}

medas_tools::inventory::submit! { ToolEntry { build: || Arc::new(Predict::new()) } }
