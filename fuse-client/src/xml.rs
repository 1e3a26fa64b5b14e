//! Reading S3's XML answers and writing keys into URLs: the few flat
//! shapes the client needs, without an XML library.

use std::time::SystemTime;

/// The inner texts of every `<tag>...</tag>` in `xml`, in order (flat
/// documents only: S3's answers do not nest an element in itself).
///
/// Scans for `<` with memchr rather than searching for the formatted tags:
/// a listing page of 1,000 entries asks for about 15,000 fields, and
/// formatting two tags and building a substring searcher for each was
/// most of the daemon's CPU in `du`.
pub(crate) fn xml_blocks<'x>(xml: &'x str, tag: &'x str) -> impl Iterator<Item = &'x str> + 'x {
    let mut rest = xml;
    std::iter::from_fn(move || {
        // `<` and `>` around the opening tag; `</` and `>` around the closing.
        let start = tag_at(rest, tag, false)? + tag.len() + 2;
        let len = tag_at(&rest[start..], tag, true)?;
        let block = &rest[start..start + len];
        rest = &rest[start + len + tag.len() + 3..];
        Some(block)
    })
}

/// Where the first `<tag>` (`</tag>` if `closing`) in `xml` starts.
fn tag_at(xml: &str, tag: &str, closing: bool) -> Option<usize> {
    let bytes = xml.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'<', &bytes[from..]) {
        let at = from + i;
        let name = &bytes[at + 1..];
        let name = if closing {
            name.strip_prefix(b"/")
        } else {
            Some(name)
        };
        if let Some(name) = name {
            if name.starts_with(tag.as_bytes()) && name.get(tag.len()) == Some(&b'>') {
                return Some(at);
            }
        }
        from = at + 1;
    }
    None
}

/// The unescaped text of the first `<tag>` in `xml`.
pub(crate) fn xml_field(xml: &str, tag: &str) -> Option<String> {
    xml_blocks(xml, tag).next().map(unescape)
}

/// Replaces XML's five named entities and numeric character references.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let entity = rest.find(';').map(|end| (&rest[1..end], end + 1));
        let decoded = entity.and_then(|(name, len)| {
            let c = match name {
                "quot" => '"',
                "apos" => '\'',
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                _ => {
                    let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => name.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, len))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn parse_iso(t: &str) -> SystemTime {
    t.parse::<jiff::Timestamp>()
        .map(SystemTime::from)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_xml() {
        let xml = "<R><Contents><Key>a%20b</Key><ETag>&quot;x&quot;</ETag></Contents><Contents><Key>c</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let keys: Vec<String> = xml_blocks(xml, "Contents")
            .filter_map(|b| xml_field(b, "Key"))
            .map(|k| url_decode(&k))
            .collect();
        assert_eq!(keys, ["a b", "c"]);
        assert_eq!(xml_field(xml, "ETag").as_deref(), Some("\"x\""));
        assert_eq!(encode_path("a b/ü"), "a%20b/%C3%BC");
    }

    #[test]
    fn tags_are_matched_whole() {
        // `<Key>` is not `<KeyCount>`, and a closing tag ends only its own.
        let xml = "<KeyCount>2</KeyCount><Keys>x</Keys><Key>k</Key><Key>l</Key>";
        assert_eq!(xml_blocks(xml, "Key").collect::<Vec<_>>(), ["k", "l"]);
        assert_eq!(xml_field(xml, "KeyCount").as_deref(), Some("2"));
        assert_eq!(xml_field(xml, "Nope"), None);
        assert_eq!(xml_field("<Key>unclosed", "Key"), None);
    }

    #[test]
    fn unescapes_entities_once() {
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("a&amp;lt;b"), "a&lt;b");
        assert_eq!(unescape("&lt;&gt;&quot;&apos;&amp;"), "<>\"'&");
        assert_eq!(unescape("&#34;&#x41;&#xd;"), "\"A\r");
        assert_eq!(unescape("a & b &bogus; &#xZZ;"), "a & b &bogus; &#xZZ;");
    }
}
