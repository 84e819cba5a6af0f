//! Typed tensors, named as the Open Inference Protocol (KServe v2) names them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

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

/// Why a tensor is malformed, or does not fit a declared input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorError {
    /// The element count is not the product of the shape.
    #[error(
        "tensor {name:?} has shape {shape:?} ({expected} elements) but {actual} elements of data"
    )]
    ElementCount {
        /// The tensor's name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The product of the shape.
        expected: usize,
        /// The elements given.
        actual: usize,
    },
    /// The product of the shape does not fit in a `usize`.
    #[error("tensor {name:?} shape {shape:?} overflows")]
    Overflow {
        /// The tensor's name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The element type is not the input's.
    #[error("input {name:?} must be {expected:?}, got {actual:?}")]
    DataType {
        /// The input's name.
        name: String,
        /// The input's element type.
        expected: DataType,
        /// The tensor's element type.
        actual: DataType,
    },
    /// The rank or a fixed dimension is not the input's.
    #[error("input {name:?} must have shape {expected:?}, got {actual:?}")]
    Shape {
        /// The input's name.
        name: String,
        /// The input's shape; -1 for a dimension of any size.
        expected: Vec<i64>,
        /// The tensor's shape.
        actual: Vec<usize>,
    },
}

impl Tensor {
    /// Checks that the element count matches the shape.
    pub fn check(&self) -> Result<(), TensorError> {
        let expected = self
            .shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d));
        match expected {
            Some(n) if n == self.data.len() => Ok(()),
            Some(expected) => Err(TensorError::ElementCount {
                name: self.name.clone(),
                shape: self.shape.clone(),
                expected,
                actual: self.data.len(),
            }),
            None => Err(TensorError::Overflow {
                name: self.name.clone(),
                shape: self.shape.clone(),
            }),
        }
    }

    /// Whether this tensor fits `spec` (datatype and every fixed dimension).
    pub fn fits(&self, spec: &TensorSpec) -> Result<(), TensorError> {
        if self.data.datatype() != spec.datatype {
            return Err(TensorError::DataType {
                name: spec.name.clone(),
                expected: spec.datatype,
                actual: self.data.datatype(),
            });
        }
        let shape_ok = self.shape.len() == spec.shape.len()
            && self
                .shape
                .iter()
                .zip(&spec.shape)
                .all(|(d, s)| *s < 0 || *d as i64 == *s);
        if !shape_ok {
            return Err(TensorError::Shape {
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                actual: self.shape.clone(),
            });
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
        assert_eq!(ok.fits(&spec), Ok(()));
        let wrong_dim = Tensor {
            shape: vec![2, 3],
            data: TensorData::Fp32(vec![0.0; 6]),
            ..ok.clone()
        };
        assert_eq!(
            wrong_dim.fits(&spec).map_err(|e| e.to_string()),
            Err("input \"x\" must have shape [-1, 4], got [2, 3]".to_owned())
        );
        let wrong_type = Tensor {
            data: TensorData::Fp64(vec![0.0; 8]),
            ..ok.clone()
        };
        assert_eq!(
            wrong_type.fits(&spec).map_err(|e| e.to_string()),
            Err("input \"x\" must be Fp32, got Fp64".to_owned())
        );
        let wrong_count = Tensor {
            data: TensorData::Fp32(vec![0.0; 7]),
            ..ok.clone()
        };
        assert!(matches!(
            wrong_count.fits(&spec),
            Err(TensorError::ElementCount {
                expected: 8,
                actual: 7,
                ..
            })
        ));
        assert_eq!(
            wrong_count.check().map_err(|e| e.to_string()),
            Err("tensor \"x\" has shape [2, 4] (8 elements) but 7 elements of data".to_owned())
        );
        let huge = Tensor {
            shape: vec![usize::MAX, 2],
            ..ok
        };
        assert!(matches!(huge.check(), Err(TensorError::Overflow { .. })));
    }
}
