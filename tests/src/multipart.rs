//! `multipart/form-data` bodies for the upload routes, written out by hand so that a test can also
//! send what a well-behaved client never would (a part twice, a part missing, a lying type).

/// The boundary of every body built here.
pub const BOUNDARY: &str = "labedge-test-boundary-7c1d9a55";

/// The `Content-Type` of a body built here.
pub fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// One part: its name, file name, declared type and bytes.
#[derive(Clone, Debug)]
pub struct Part<'a> {
    /// The form field's name.
    pub name: &'a str,
    /// The file name, for a file part.
    pub file_name: Option<&'a str>,
    /// The declared `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl<'a> Part<'a> {
    /// A JSON part.
    pub fn json(name: &'a str, value: &serde_json::Value) -> Self {
        Self {
            name,
            file_name: None,
            content_type: Some("application/json"),
            bytes: value.to_string().into_bytes(),
        }
    }

    /// A file part.
    pub fn file(name: &'a str, file_name: &'a str, content_type: &'a str, bytes: Vec<u8>) -> Self {
        Self {
            name,
            file_name: Some(file_name),
            content_type: Some(content_type),
            bytes,
        }
    }
}

/// The body made of `parts`, in order.
pub fn body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(file_name) = part.file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        out.extend_from_slice(disposition.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// A small valid JPEG-looking file of `len` bytes (the signature, then filler): the gateway reads
/// the type from the first bytes and does not decode the image.
pub fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len.saturating_sub(4)).map(|i| (i % 251) as u8));
    bytes
}

/// A PDF-looking file of `len` bytes.
pub fn pdf(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..len.saturating_sub(9)).map(|i| b'a' + (i % 26) as u8));
    bytes
}
