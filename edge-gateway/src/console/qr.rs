//! The QR code a tablet scans to enroll: `labedge://enroll?code=<CODE>&lab=<LAB>`, rendered as SVG
//! by the gateway (the console shows it as an image; nothing is drawn from data in the browser).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The URI a tablet reads from the QR code.
pub fn enrollment_uri(code: &str, lab: &str) -> String {
    format!("labedge://enroll?code={}&lab={}", encode(code), encode(lab))
}

/// The QR code of `uri` as an SVG document (black on white, with its quiet zone), or `None` when it
/// does not fit in a QR code (it always does for an enrollment URI).
pub fn svg(uri: &str) -> Option<String> {
    // Medium error correction: a scratched or reflective tablet screen still reads it.
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(220, 220)
            .dark_color(svg::Color("#0b1f2a"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass as they are).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_carries_the_code_and_the_lab_encoded() {
        assert_eq!(
            enrollment_uri("ABCD2345", "VILLEURBANNE"),
            "labedge://enroll?code=ABCD2345&lab=VILLEURBANNE"
        );
        assert_eq!(
            enrollment_uri("ABCD2345", "LAB 1&2"),
            "labedge://enroll?code=ABCD2345&lab=LAB%201%262"
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = svg(&enrollment_uri("ABCD2345", "VILLEURBANNE")).expect("fits");
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<script"));
    }
}
