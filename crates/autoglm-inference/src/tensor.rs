//! Typed tensors, named as the Open Inference Protocol (KServe v2) names them.

use serde::{Deserialize, Serialize};

/// Element types of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    /// Booleans.
    Bool,
    /// Unsigned 8-bit.
    Uint8,
    /// Signed 32-bit.
    Int32,
    /// Signed 64-bit.
    Int64,
    /// 32-bit float.
    Fp32,
    /// 64-bit float.
    Fp64,
    /// Byte strings (text).
    Bytes,
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Shape; -1 for a dimension of any size.
    pub shape: Vec<i64>,
}

/// Tensor elements, flattened in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// BOOL.
    Bool(Vec<bool>),
    /// UINT8.
    Uint8(Vec<u8>),
    /// INT32.
    Int32(Vec<i32>),
    /// INT64.
    Int64(Vec<i64>),
    /// FP32.
    Fp32(Vec<f32>),
    /// FP64.
    Fp64(Vec<f64>),
    /// BYTES.
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Uint8(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Fp64(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements; their count is the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// Checks that the element count matches the shape.
    pub fn check(&self) -> Result<(), String> {
        let expected = self
            .shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d));
        match expected {
            Some(n) if n == self.data.len() => Ok(()),
            Some(n) => Err(format!(
                "tensor {:?} has shape {:?} ({n} elements) but {} elements of data",
                self.name,
                self.shape,
                self.data.len()
            )),
            None => Err(format!(
                "tensor {:?} shape {:?} overflows",
                self.name, self.shape
            )),
        }
    }

    /// Whether this tensor fits `spec` (datatype and every fixed dimension).
    pub fn fits(&self, spec: &TensorSpec) -> Result<(), String> {
        if self.data.datatype() != spec.datatype {
            return Err(format!(
                "input {:?} must be {:?}, got {:?}",
                spec.name,
                spec.datatype,
                self.data.datatype()
            ));
        }
        let shape_ok = self.shape.len() == spec.shape.len()
            && self
                .shape
                .iter()
                .zip(&spec.shape)
                .all(|(d, s)| *s < 0 || *d as i64 == *s);
        if !shape_ok {
            return Err(format!(
                "input {:?} must have shape {:?}, got {:?}",
                spec.name, spec.shape, self.shape
            ));
        }
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_types_are_checked() {
        let spec = TensorSpec {
            name: "x".into(),
            datatype: DataType::Fp32,
            shape: vec![-1, 4],
        };
        let ok = Tensor {
            name: "x".into(),
            shape: vec![2, 4],
            data: TensorData::Fp32(vec![0.0; 8]),
        };
        assert!(ok.fits(&spec).is_ok());
        let wrong_dim = Tensor {
            shape: vec![2, 3],
            data: TensorData::Fp32(vec![0.0; 6]),
            ..ok.clone()
        };
        assert!(wrong_dim.fits(&spec).is_err());
        let wrong_type = Tensor {
            data: TensorData::Fp64(vec![0.0; 8]),
            ..ok.clone()
        };
        assert!(wrong_type.fits(&spec).is_err());
        let wrong_count = Tensor {
            data: TensorData::Fp32(vec![0.0; 7]),
            ..ok
        };
        assert!(wrong_count.fits(&spec).is_err());
    }
}
