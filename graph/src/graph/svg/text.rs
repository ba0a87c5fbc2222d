//! The SVG's texts and ids: XML escaping and safe, prefixed ids.

/// Text for XML content and attribute values. Line breaks become character
/// references, so that no user text can put a blank line into the picture; other
/// control characters, which XML 1.0 forbids even as references, become `U+FFFD`.
pub(super) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Only `[A-Za-z0-9_-]`: safe in an XML id, a CSS selector and a `url(#…)`.
fn sanitize_id(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An id prefix given by the caller, made safe, and starting with a letter as HTML
/// ids should.
pub(super) fn svg_prefix(prefix: &str) -> String {
    let clean = sanitize_id(prefix);
    if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        format!("sagaflow-{clean}")
    }
}

/// `sagaflow-<name>`; when the name had to be changed to be safe, a hash of the
/// real name is added, so that `a b` and `a_b` still get different prefixes.
pub(in crate::graph) fn default_prefix(name: &str) -> String {
    let clean = sanitize_id(name);
    if !name.is_empty() && clean == name {
        format!("sagaflow-{clean}")
    } else {
        format!("sagaflow-{clean}-{:08x}", fnv1a(name))
    }
}

/// 32-bit FNV-1a: small, stable across Rust versions and platforms (unlike
/// `DefaultHasher`), which the snapshots of generated docs need.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}
