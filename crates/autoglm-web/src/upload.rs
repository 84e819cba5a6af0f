//! A browser's upload form, re-framed for the API: its text fields (task,
//! framework, parent, description) become the one `metadata` JSON part the
//! API wants first, and its files follow as `artifact` parts, streamed
//! through as they arrive. Only the small text fields are held in memory,
//! so the form needs no script, and a large file is never buffered.

use autoglm_auth::random_string;
use axum::body::{Body, Bytes};
use axum::extract::Multipart;
use futures_util::stream;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// The text fields the metadata part is made of.
const METADATA_FIELDS: [&str; 4] = ["task", "framework", "parent", "description"];

/// Largest text field read.
const FIELD_LIMIT: usize = 64 * 1024;

type Chunk = Result<Bytes, std::io::Error>;

/// The upload as the API takes it: its content type and body. The body is
/// produced while the API reads it; a broken form ends it with an error,
/// which the API reports as a malformed upload.
pub fn reframe(form: Multipart) -> (String, Body) {
    let boundary = format!("autoglm-{}", random_string(24));
    let (sender, receiver) = mpsc::channel::<Chunk>(8);
    tokio::spawn(pump(form, boundary.clone(), sender));
    let body = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (
        format!("multipart/form-data; boundary={boundary}"),
        Body::from_stream(body),
    )
}

fn broken(why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("the upload form: {why}"))
}

/// Writes the re-framed body into `out`, or the error that stopped it.
async fn pump(mut form: Multipart, boundary: String, out: mpsc::Sender<Chunk>) {
    if let Err(e) = write_parts(&mut form, &boundary, &out).await {
        let _ = out.send(Err(e)).await;
    }
}

async fn write_parts(
    form: &mut Multipart,
    boundary: &str,
    out: &mpsc::Sender<Chunk>,
) -> Result<(), std::io::Error> {
    let send = |bytes: Bytes| async move {
        out.send(Ok(bytes))
            .await
            .map_err(|_| std::io::Error::other("the API stopped reading"))
    };
    let mut metadata = Map::new();
    let mut sent_metadata = false;
    while let Some(mut field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        if METADATA_FIELDS.contains(&name.as_str()) {
            if sent_metadata {
                return Err(broken(format!("field {name} came after the files")));
            }
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(broken)? {
                if text.len() + chunk.len() > FIELD_LIMIT {
                    return Err(broken(format!("field {name} is over {FIELD_LIMIT} bytes")));
                }
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            if !text.is_empty() {
                let value = metadata_value(&name, &text);
                metadata.insert(name, value);
            }
            continue;
        }
        if name != "artifact" {
            return Err(broken(format!("unexpected field {name:?}")));
        }
        let file_name = field.file_name().unwrap_or_default().to_owned();
        if file_name.is_empty() {
            // A file input left empty still sends a part without a name.
            continue;
        }
        if !sent_metadata {
            send(part_head(boundary, "metadata", None, true)).await?;
            send(Bytes::from(Value::Object(metadata.clone()).to_string())).await?;
            sent_metadata = true;
        }
        send(part_head(boundary, "artifact", Some(&file_name), false)).await?;
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            send(chunk).await?;
        }
    }
    if !sent_metadata {
        return Err(broken("no file was chosen"));
    }
    send(Bytes::from(format!("\r\n--{boundary}--\r\n"))).await
}

/// A parent version is a number; anything else, or a parent that is not a
/// number, goes as typed, for the API to judge.
fn metadata_value(name: &str, text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) if name == "parent" => Value::from(n),
        _ => Value::from(text),
    }
}

/// The boundary and headers that open a part (the line break before the
/// boundary ends the previous part).
fn part_head(boundary: &str, name: &str, file_name: Option<&str>, first: bool) -> Bytes {
    let file = file_name
        .map(|f| format!("; filename=\"{}\"", f.replace(['"', '\r', '\n'], "_")))
        .unwrap_or_default();
    let content_type = if file_name.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    };
    let before = if first { "" } else { "\r\n" };
    Bytes::from(format!(
        "{before}--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: {content_type}\r\n\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_parent_becomes_a_number() {
        assert_eq!(metadata_value("parent", "3"), Value::from(3));
        assert_eq!(metadata_value("parent", "three"), Value::from("three"));
        assert_eq!(metadata_value("task", "123"), Value::from("123"));
    }

    #[test]
    fn parts_open_with_their_boundary_and_names() {
        let first = part_head("b", "metadata", None, true);
        assert!(first.starts_with(b"--b\r\nContent-Disposition: form-data; name=\"metadata\""));
        let file = part_head("b", "artifact", Some("a\"b.onnx"), false);
        let file = String::from_utf8_lossy(&file);
        assert!(file.starts_with("\r\n--b\r\n"), "{file}");
        assert!(file.contains("filename=\"a_b.onnx\""), "{file}");
    }
}
