//! Nacos' gRPC envelope: every message is a `Payload` whose `metadata.type`
//! names a Java class and whose `body.value` is that class as JSON
//! (`nacos_grpc_service.proto`, which has no package: the paths are
//! `/Request/request` and `/BiRequestStream/requestBiStream`).

use std::collections::HashMap;

use serde_json::Value;

/// `Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// The class name (`ConfigQueryRequest`).
    #[prost(string, tag = "3")]
    pub r#type: String,
    /// The client's address, as it says.
    #[prost(string, tag = "8")]
    pub client_ip: String,
    /// Headers (`accessToken` among them).
    #[prost(map = "string, string", tag = "7")]
    pub headers: HashMap<String, String>,
}

/// `google.protobuf.Any`, as Nacos uses it: an empty `type_url`, JSON bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// Left empty by Nacos.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The JSON.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `Payload`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// What it is.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<Metadata>,
    /// The JSON body.
    #[prost(message, optional, tag = "3")]
    pub body: Option<Any>,
}

impl Payload {
    /// A payload of class `kind` with `body` as its JSON.
    pub fn of(kind: &str, body: &Value) -> Payload {
        Payload {
            metadata: Some(Metadata {
                r#type: kind.to_owned(),
                client_ip: String::new(),
                headers: HashMap::new(),
            }),
            body: Some(Any {
                type_url: String::new(),
                value: serde_json::to_vec(body).unwrap_or_default(),
            }),
        }
    }

    /// The class name.
    pub fn kind(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.r#type.as_str())
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        self.body
            .as_ref()
            .and_then(|b| serde_json::from_slice(&b.value).ok())
            .unwrap_or(Value::Null)
    }

    /// A header, from the metadata or else the JSON body's `headers`, as
    /// Java clients and the Python client each put them.
    pub fn header(&self, name: &str) -> Option<String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.headers.get(name).cloned())
            .or_else(|| self.json()["headers"][name].as_str().map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_payload_round_trips_and_finds_headers_in_either_place() {
        let mut p = Payload::of(
            "ConfigQueryRequest",
            &json!({"dataId": "a", "headers": {"accessToken": "t1"}}),
        );
        let bytes = p.encode_to_vec();
        let back = Payload::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.kind(), "ConfigQueryRequest");
        assert_eq!(back.json()["dataId"], "a");
        assert_eq!(back.header("accessToken").as_deref(), Some("t1"));
        p.metadata
            .as_mut()
            .unwrap()
            .headers
            .insert("accessToken".into(), "t2".into());
        assert_eq!(p.header("accessToken").as_deref(), Some("t2"));
    }
}
