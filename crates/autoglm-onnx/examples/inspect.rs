//! Prints an ONNX file's graph as tract reads it: inputs, nodes (operator,
//! domain, whether tract implements it) and outputs, then the served specs.
//! Usage: `cargo run -p autoglm-onnx --example inspect -- model.onnx`.

use std::path::PathBuf;

use autoglm_inference::TensorModel;
use tract_onnx::prelude::Framework;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: inspect MODEL.onnx")?
        .into();
    let onnx = tract_onnx::onnx();
    let proto = onnx.proto_model_for_path(&path)?;
    let graph = proto.graph.as_ref().ok_or("no graph")?;
    println!(
        "producer: {} {}",
        proto.producer_name, proto.producer_version
    );
    for import in &proto.opset_import {
        println!("opset: {:?} {}", import.domain, import.version);
    }
    for input in &graph.input {
        println!("input: {} {:?}", input.name, input.r#type);
    }
    for node in &graph.node {
        let implemented = onnx.op_register.0.contains_key(&node.op_type);
        let attributes: Vec<&str> = node.attribute.iter().map(|a| a.name.as_str()).collect();
        println!(
            "node: {} ({:?}, tract implements it: {implemented}) {:?} -> {:?} attributes {attributes:?}",
            node.op_type, node.domain, node.input, node.output
        );
    }
    for output in &graph.output {
        println!("output: {} {:?}", output.name, output.r#type);
    }
    match autoglm_onnx::OnnxModel::load(&path) {
        Ok(model) => {
            println!("served inputs: {:?}", model.inputs());
            println!("served outputs: {:?}", model.outputs());
            for spec in model.outputs() {
                if let Some(labels) = model.class_labels(&spec.name) {
                    println!("class labels of {}: {labels:?}", spec.name);
                }
            }
        }
        Err(e) => println!("not servable: {e}"),
    }
    Ok(())
}
