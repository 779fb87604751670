//! Named tensors to and from safetensors files, written atomically and read
//! strictly: a missing, extra or misshapen tensor is an error naming it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use safetensors::{Dtype, View};
use tch::{Kind, Tensor};

struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn bytes(t: &Tensor) -> anyhow::Result<Bytes> {
    let t = t.to_device(tch::Device::Cpu).contiguous();
    let dtype = match t.kind() {
        Kind::Float => Dtype::F32,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Int64 => Dtype::I64,
        other => bail!("cannot store a {other:?} tensor"),
    };
    let n = t.numel();
    let mut data = vec![0u8; n * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, n)?;
    Ok(Bytes {
        dtype,
        shape: t.size().iter().map(|&s| s as usize).collect(),
        data,
    })
}

/// Writes tensors (sorted by name, so the bytes are deterministic) through a
/// temporary file renamed into place; `metadata` goes in the header.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> anyhow::Result<()> {
    let mut sorted: BTreeMap<&str, Bytes> = BTreeMap::new();
    for (name, t) in tensors {
        sorted.insert(name, bytes(t).with_context(|| format!("tensor {name}"))?);
    }
    let tmp = crate::atomic::temp_beside(path)?;
    safetensors::serialize_to_file(sorted.iter().map(|(n, b)| (*n, b)), metadata, tmp.path())
        .with_context(|| format!("writing {}", path.display()))?;
    crate::atomic::persist(tmp, path)
}

/// Copies a file's tensors into `targets`, which must match it name for name and shape for shape.
pub fn load_into(path: &Path, targets: &[(String, Tensor)]) -> anyhow::Result<()> {
    let mut found: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .with_context(|| format!("reading {}", path.display()))?
        .into_iter()
        .collect();
    tch::no_grad(|| {
        for (name, target) in targets {
            let Some(t) = found.remove(name) else {
                bail!("{}: no tensor `{name}`", path.display())
            };
            if t.size() != target.size() {
                bail!(
                    "{}: `{name}` has shape {:?}, the model expects {:?}",
                    path.display(),
                    t.size(),
                    target.size()
                );
            }
            let mut target = target.shallow_clone();
            target.copy_(&t);
        }
        Ok(())
    })?;
    if let Some(extra) = found.keys().min() {
        bail!(
            "{}: unexpected tensor `{extra}` (was it saved by another configuration?)",
            path.display()
        );
    }
    Ok(())
}
