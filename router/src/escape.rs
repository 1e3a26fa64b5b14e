//! Strict percent-decoding of URL pieces and headers, for the S3
//! extensions and the access check's condition keys, and the encoding S3
//! and Signature Version 4 use. A leaf module.

/// Escapes every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) and
/// those in `keep` as `%XX` (upper-case hex), as S3 and SigV4 encode.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b if keep.contains(&b) => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_but_unreserved_and_kept_bytes() {
        assert_eq!(percent_encode("a b/\u{e9}~", b""), "a%20b%2F%C3%A9~");
        assert_eq!(percent_encode("a b/c", b"/"), "a%20b/c");
    }

    #[test]
    fn decodes_escapes_strictly() {
        assert_eq!(percent_decode("a%20b/%C3%A9").as_deref(), Some("a b/\u{e9}"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
