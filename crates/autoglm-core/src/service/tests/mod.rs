//! Tests of the ModelService types: the wire shape, and each rule's message.

mod rules;
mod wire;
